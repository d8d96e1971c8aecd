"""The ``chronum`` command: a thin layer over the public API.

Exit codes: 0 succeeded, 1 the run failed or was cancelled, 2 invalid flow or usage,
130 interrupted (Ctrl-C). A ``ChronumError`` prints its message and no traceback.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence
from typing import Any

from .._args import name_value
from ..errors import ChronumError, SpecError

__all__ = ["console", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _age(text: str) -> float:
    from .._args import parse_duration

    seconds = parse_duration(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"expected a duration like 30m, 6h or 7d, got {text!r}")
    return seconds


def _paths(*actions: argparse.Action) -> None:
    """Shell completion (``chronum completion``) offers file names for these arguments.

    shtab reads a ``complete`` attribute on an action; a string names one of its completers.
    """
    for action in actions:
        action.complete = "file"  # type: ignore[attr-defined]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="chronum",
        description="Run workflow DAGs written in YAML; every run is recorded in SQLite.",
    )
    p.add_argument("--version", action="version", version=f"chronum {_version()}")
    commands = p.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                help="one of these (`chronum COMMAND --help` for its options)")

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, **kwargs)
        return parser

    def flow_file(cmd: argparse.ArgumentParser) -> None:
        _paths(cmd.add_argument("file", metavar="FILE", help="the flow file (YAML)"))

    def db_option(cmd: argparse.ArgumentParser) -> None:
        _paths(cmd.add_argument("--db", metavar="PATH",
                                help="SQLite file (default: $CHRONUM_DB or .chronum/chronum.db)"))

    def run_options(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("--max-parallel", type=_positive, metavar="N",
                         help="run at most N steps at once (overrides maxParallel)")
        cmd.add_argument("--stop-on-fail", action="store_true", default=None,
                         help="stop the run at the first failure (overrides stopOnFail)")
        _paths(cmd.add_argument("--events-jsonl", metavar="PATH",
                                help="append every event as one JSON line to PATH"))
        cmd.add_argument("--format", choices=("text", "json"), default="text",
                         help="text: live progress; json: the run as JSON at the end")
        cmd.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                         help="colour the progress lines: always, never, or auto (the default): "
                              "not if NO_COLOR is set, else yes if FORCE_COLOR is, else only on "
                              "a terminal")
        cmd.add_argument("-q", "--quiet", action="store_true",
                         help="no step output, only state changes")
        db_option(cmd)
        cmd.add_argument("--subscriber", dest="subscribers", action="append", default=[],
                         metavar="NAME", help="feed the run's events to this installed "
                         "observer (a chronum.subscribers entry point, e.g. otel; repeatable; "
                         "also $CHRONUM_SUBSCRIBERS=a,b)")

    run = command("run", help="run a flow file")
    flow_file(run)
    run.add_argument("-p", "--param", dest="params", action="append", type=name_value, default=[],
                     metavar="NAME=VALUE", help="override a declared param (repeatable)")
    run.add_argument("--executor", choices=("dask",),
                     help="run every python step with this executor (dask: on a Dask cluster)")
    run.add_argument("--no-cache", dest="cache", action="store_false", default=None,
                     help="reuse no earlier result (keys are still recorded)")
    run.add_argument("--cache", dest="cache", action="store_true",
                     help="cache every step without its own 'cache:' (as 'cache: true')")
    run.add_argument("--from", dest="from_step", metavar="STEP",
                     help="run STEP and everything downstream; reuse the latest results "
                          "of what is upstream")
    run.add_argument("--only", nargs="+", metavar="STEP", default=[],
                     help="run just these steps, reusing the latest results they need")
    run_options(run)

    val = command("validate", help="check a flow file and report every problem")
    flow_file(val)

    graph = command("graph", help="draw a flow (DOT, SVG or PNG)")
    flow_file(graph)
    _paths(graph.add_argument("-o", "--output", metavar="OUT",
                              help="out.svg, out.png or out.dot (default: DOT on stdout)"))

    hist = command("history", help="past runs, newest first")
    hist.add_argument("--limit", type=_positive, default=20, metavar="N",
                      help="show the N newest runs (default: 20)")
    hist.add_argument("--format", choices=("table", "csv", "json"), default="table",
                      help="an aligned table (the default), CSV, or a JSON list")
    db_option(hist)

    show = command("show", help="one run and its steps")
    show.add_argument("run", metavar="RUN", help=_RUN_HELP)
    show.add_argument("--format", choices=("table", "json"), default="table",
                      help="an aligned table (the default) or a JSON object")
    db_option(show)

    logs = command("logs", help="the log of a run's steps")
    logs.add_argument("run", metavar="RUN", help=_RUN_HELP)
    logs.add_argument("step", nargs="?", metavar="STEP",
                      help="only this step's log (default: every step's, each with a header)")
    db_option(logs)

    resume = command("resume", help="run again what did not succeed in RUN")
    resume.add_argument("run", metavar="RUN", help=_RUN_HELP)
    resume.add_argument("--again", action="store_true",
                        help="resume RUN although an earlier resume of it succeeded")
    resume.add_argument("--no-kill", dest="kill", action="store_false",
                        help="refuse, naming them, instead of stopping the processes and "
                             "containers the dead run left running")
    run_options(resume)

    cancel = command("cancel", help="record a run whose runner is gone as cancelled")
    cancel.add_argument("run", metavar="RUN", help=_RUN_HELP)
    cancel.add_argument("--force", action="store_true",
                        help="cancel a run recorded on another host (its runner cannot be "
                             "checked from here)")
    db_option(cancel)

    cache = command("cache", help="list or clear the values cached steps kept")
    cache_commands = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True,
                                          help="list or clear")
    cache_list = cache_commands.add_parser("list", help="flows, steps, kept values and sizes")
    cache_list.add_argument("--flow", metavar="NAME", help="only this flow's")
    db_option(cache_list)
    cache_clear = cache_commands.add_parser(
        "clear", help="remove kept values (and mark them gone, so no later run reuses them)")
    cache_clear.add_argument("--flow", metavar="NAME", help="only this flow's")
    cache_clear.add_argument("--older-than", metavar="AGE", type=_age,
                             help="only values saved longer ago than AGE (30m, 6h, 7d)")
    db_option(cache_clear)

    srv = command("serve", help="a local dashboard of the runs, with a JSON API and WebSocket")
    db_option(srv)
    srv.add_argument("--host", default="127.0.0.1",
                     help="address to bind (default: 127.0.0.1; any other needs --token)")
    srv.add_argument("--port", type=_positive, default=8765, help="port (default: 8765)")
    srv.add_argument("--token", help="the token every call needs (default: "
                     "$CHRONUM_SERVE_TOKEN, else a random one, printed in the URL)")
    srv.add_argument("--open", action="store_true", help="open the dashboard in a browser")

    export = command("export", help="write runs, steps, attempts or events for other tools")
    export.add_argument("table", choices=("runs", "steps", "attempts", "events"),
                        help="what to write: runs, steps, attempts or events")
    export.add_argument("--format", choices=("parquet", "csv", "jsonl"), default="csv",
                        help="csv (the default), jsonl, or parquet (needs -o and pyarrow)")
    export.add_argument("--flow", help="only the runs of this flow")
    export.add_argument("--since", metavar="TIME",
                        help="only runs started at or after TIME (ISO 8601; naive means UTC)")
    _paths(export.add_argument("-o", "--output", metavar="PATH",
                               help="write to PATH (default: stdout; parquet needs a file)"))
    db_option(export)

    completion = command(
        "completion", help="print a shell completion script",
        description="Print a completion script for SHELL. For bash, for instance: "
                    "chronum completion bash > ~/.local/share/bash-completion/completions/chronum")
    completion.add_argument("shell", metavar="SHELL", choices=("bash", "zsh", "tcsh"),
                            help="bash, zsh or tcsh")
    return p


_RUN_HELP = "a run id, a unique prefix of one, or 'last'"


def _version() -> str:
    from .._version import __version__

    return __version__


class _WarningLines(logging.Handler):
    """``chronum: warning: ...`` on whatever ``sys.stderr`` is when the warning is written."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"chronum: {record.levelname.lower()}: {record.getMessage()}\n")
        except Exception:
            self.handleError(record)


def _show_warnings() -> None:
    """Chronum's warnings (the ``chronum`` logger) as one line each on stderr, unless the
    program around ``main`` already routes them."""
    logger = logging.getLogger("chronum")
    if not logger.handlers:
        logger.addHandler(_WarningLines(logging.WARNING))
        logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _show_warnings()
    from . import commands

    try:
        code: int = getattr(commands, f"cmd_{args.command}")(args)
    except SpecError as exc:  # already file:line:col: message (hint), one line per problem
        print(exc, file=sys.stderr)
        if len(exc.problems) > 1:
            print(f"{len(exc.problems)} problems found", file=sys.stderr)
        return exc.exit_code
    except ChronumError as exc:
        print(f"chronum: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("chronum: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `chronum history | head`
        return EXIT_OK
    return code


def console() -> None:
    """The ``chronum`` executable: ``main``, then a normal exit (``atexit`` handlers run).

    A reader that stops early (``chronum history | head``) closes the pipe: what is still
    buffered cannot be written, and the interpreter would report that at exit. As the Python
    docs advise for SIGPIPE, stdout then points at devnull so the exit is quiet.
    """
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_to_devnull()
    # The command is over and everything it opened is closed. Freezing what is left keeps the
    # interpreter's final collections from scanning every module's objects just to free memory
    # the OS takes back anyway; the exit stays normal (atexit handlers, threads joined, module
    # teardown). A process-wide switch, so only here, in the executable, never in library code:
    # benchmarks/choices.py measures what it saves of a one-step run (docs/performance.md).
    gc.freeze()  # kept by benchmarks/choices.py ("exit"), as said above
    sys.exit(code)


def _stdout_to_devnull() -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
