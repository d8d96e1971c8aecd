"""``%%chronum`` and ``%chronum``: the magics, the input transformer and the display hooks.

The transformer is what makes a ``%%chronum`` cell a real top-level ``await``: it rewrites the
cell into one line awaiting ``cell.run_cell``, and ipykernel decides to run a cell on its loop
from the transformed text. The registered magics stay as fallbacks for code that calls
``run_cell_magic`` directly: inside a running loop they cannot block, so they start the run in
the background and return its handle.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import time
from collections.abc import Callable, Mapping
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import display
from traitlets import Bool, Float, Int, TraitError, Unicode, validate

from .. import api
from ..errors import ChronumError
from ..model import Flow
from ..session import RunOptions, prepare_resume
from . import cell
from .cell import SHOW_AFTER
from .kernel import current, settings, state_of

__all__ = ["ChronumMagics", "load_ipython_extension", "transform", "unload_ipython_extension"]

_MODULE = "chronum.notebook.cell"
_LINE_MODULE = "chronum.notebook.magics"


def _is_magic(line: str, word: str) -> bool:
    return line.startswith(word) and (len(line) == len(word) or line[len(word)].isspace())


def transform(lines: list[str]) -> list[str]:
    """Input transformer: a ``%%chronum`` cell (or a lone ``%chronum`` line) becomes an await."""
    if not lines:
        return lines
    first = lines[0].rstrip("\n")
    if _is_magic(first, "%%chronum"):
        line, body = first[len("%%chronum"):].strip(), "".join(lines[1:])
        return [f"await __import__({_MODULE!r}, fromlist=['run_cell'])"
                f".run_cell({line!r}, {body!r})\n"]
    if _is_magic(first, "%chronum") and not "".join(lines[1:]).strip():
        line = first[len("%chronum"):].strip()
        return [f"await __import__({_LINE_MODULE!r}, fromlist=['run_line'])"
                f".run_line({line!r})\n"]
    return lines


# -- %chronum line commands -----------------------------------------------------------------

LINE_HELP = """\
%chronum COMMAND [ARGS] [--db PATH]: Chronum's line commands.

  history [N] [--flow NAME] [--status STATE]
                          the last N runs (all without N), newest first, as a DataFrame
  show RUN                a past run redrawn: graph, table, logs, timeline
  logs RUN [STEP]         the logs of a run, or of one of its steps
  graph [RUN]             the graph of a run, or of the last %%chronum cell
  compare RUN_A [RUN_B]   two runs side by side, one row per step (RUN_B: the latest)
  resume RUN              run again what did not succeed, with the live view
  cancel RUN [--force]    stop a run (one started in another process too)
  cache list|clear [--flow NAME] [--older-than AGE]
                          the kept step values (a DataFrame), or remove them
  wait                    wait for the last --background run and show its result

Examples:
  %chronum history 5 --status failed
  %chronum logs last report
  %chronum compare $yesterday last

RUN is a run id, a unique prefix of one, or 'last'. $var and {var} expand from the
notebook's variables. Settings: %config ChronumMagics (db, max_parallel, show_after,
timeline). Help for the cell magic: %%chronum? or %%chronum --help.
"""


def _line_parser() -> cell._Parser:
    p = cell._Parser(prog="%chronum", add_help=False)
    sub = p.add_subparsers(dest="command", parser_class=cell._Parser)
    history = sub.add_parser("history", add_help=False, prog="%chronum history")
    history.add_argument("limit", nargs="?", type=cell._non_negative)
    history.add_argument("--flow")
    history.add_argument("--status")
    for name in ("show", "resume"):
        sub.add_parser(name, add_help=False, prog=f"%chronum {name}").add_argument("run")
    logs = sub.add_parser("logs", add_help=False, prog="%chronum logs")
    logs.add_argument("run")
    logs.add_argument("step", nargs="?")
    sub.add_parser("graph", add_help=False, prog="%chronum graph").add_argument(
        "run", nargs="?")
    compare = sub.add_parser("compare", add_help=False, prog="%chronum compare")
    compare.add_argument("run")
    compare.add_argument("other", nargs="?", default="last")
    cache = sub.add_parser("cache", add_help=False, prog="%chronum cache")
    cache.add_argument("action", choices=("list", "clear"))
    cache.add_argument("--flow")
    cache.add_argument("--older-than", dest="older_than")
    cancel = sub.add_parser("cancel", add_help=False, prog="%chronum cancel")
    cancel.add_argument("run")
    cancel.add_argument("--force", action="store_true")
    sub.add_parser("wait", add_help=False, prog="%chronum wait")
    return p


_COMMANDS = ("history", "show", "logs", "graph", "compare", "resume", "cancel", "cache",
             "wait")


_OPTIONS = {"history": ("--flow", "--status"), "cancel": ("--force",),
            "cache": ("--flow", "--older-than")}


def _known_options(argv: list[str]) -> None:
    """An option the command does not take, named as such (argparse would first complain
    about the value after it, which is not the mistake)."""
    command = next((a for a in argv if a in _COMMANDS), None)
    if command is None:
        return
    known = ("--db", *_OPTIONS.get(command, ()))
    for arg in argv:
        if arg.startswith("-") and arg.split("=", 1)[0] not in known:
            choices = f"; it takes {', '.join(known)}" if len(known) > 1 else ""
            raise UsageError(f"%chronum {command}: unknown option {arg}{choices}")


def _parse_line(line: str) -> argparse.Namespace | None:
    """The line's command and arguments; None when it asked for help (printed here)."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%chronum: {exc}") from None
    if not argv or argv[0] in ("help", "-h", "--help") or "--help" in argv or "-h" in argv:
        if argv:
            print(LINE_HELP, end="")
            return None
        raise UsageError("%chronum: expected one of: " + ", ".join(_COMMANDS)
                         + " (%chronum --help says more)")
    db = settings().db
    if "--db" in argv:  # anywhere on the line, before or after the command
        i = argv.index("--db")
        if i + 1 >= len(argv):
            raise UsageError("%chronum: --db needs a path")
        db = argv[i + 1]
        del argv[i:i + 2]
    _known_options(argv)
    ns = _line_parser().parse_args(argv)
    if ns.command is None:
        raise UsageError("%chronum: expected one of: " + ", ".join(_COMMANDS))
    ns.db = db
    return ns


def _show(ref: str, db: str | None, *, timeline: bool = True) -> Any:
    """``chronum.show``, given the flow of a run started from a cell of this kernel (a cell
    has no file to reload it from)."""
    from ..store import Store, resolve_db_path

    with Store(resolve_db_path(db)) as store:
        run_id = store.resolve_run(ref)
    return api.show(run_id, db=db, timeline=timeline, flow=current().flows.get(run_id))


def _graph(args: list[str], db: str | None) -> Any:
    if args:
        return _show(args[0], db, timeline=False)
    flow = current().last_flow
    if flow is None:
        raise UsageError("%chronum graph: no %%chronum cell has run yet; give a RUN")
    cell._dry_run(flow)
    return None


def _cell_flow(run_id: str, info: Mapping[str, Any]) -> Flow | None:
    """A run started from a cell resumes with that cell's flow: from this kernel, or parsed
    again from the cell's text kept with the run (it ran in an earlier kernel)."""
    flow = current().flows.get(run_id)
    origin = info.get("origin")
    if flow is None and origin and origin.get("kind") == "cell":
        flow = cell.parse_flow(origin["text"], cell.parse_options(origin["line"]))
    return flow


async def _resume(ref: str, db: str | None) -> api.Run:
    """Resume a run with the live view; a run of a flow file resumes from its file."""
    from IPython import get_ipython

    ip = get_ipython()
    namespace = ip.user_ns if ip is not None else None
    resumption = prepare_resume(ref, db=db, choose=_cell_flow, namespace=namespace)
    options = RunOptions(db=db, origin=resumption.origin)
    run = await cell.run_with_view(resumption.flow, options, time.monotonic(),
                                   plan=resumption.plan)
    assert isinstance(run, api.Run)
    return run


async def _wait() -> Any:
    handles = current().handles
    if not handles:
        raise UsageError("%chronum wait: no run was started with --background")
    return await handles[-1].wait()


def _cache(action: str, flow: str | None, older_than: str | None, db: str | None) -> Any:
    """``%chronum cache list [--flow NAME]``: the kept values as a DataFrame;
    ``%chronum cache clear [--flow NAME] [--older-than AGE]``: remove them (as ``chronum
    cache``)."""
    from .._args import parse_duration
    from ..store import Store, resolve_db_path
    from ..store import keys as cache_rows

    older = None
    if older_than is not None:
        older = parse_duration(older_than)
        if older is None or action != "clear":
            raise UsageError(f"%chronum cache: --older-than takes a duration like 7d and "
                             f"goes with clear, got {older_than!r}")
    with Store(resolve_db_path(db)) as store:
        if action == "clear":
            n, freed = cache_rows.clear_values(store, flow, older)
            print(f"removed {n} kept value{'s' if n != 1 else ''} ({freed:,} bytes)")
            return None
        entries = cache_rows.cache_entries(store, flow)
    import pandas as pd

    columns = ["flow", "step", "run_id", "size", "saved_at", "exists"]
    frame = pd.DataFrame(entries, columns=columns)
    frame["saved_at"] = pd.to_datetime(frame["saved_at"], unit="s", utc=True)
    return frame


def _sync_command(ns: argparse.Namespace) -> Any:
    command, db = ns.command, ns.db
    if command == "history":
        return api.history(ns.limit, flow=ns.flow, status=ns.status, db=db)
    if command == "show":
        return _show(ns.run, db, timeline=True)
    if command == "logs":
        api.show_logs(ns.run, ns.step, db=db)
        return None
    if command == "graph":
        return _graph([ns.run] if ns.run else [], db)
    if command == "compare":
        return api.compare(ns.run, ns.other, db=db)
    if command == "cache":
        return _cache(ns.action, ns.flow, ns.older_than, db)
    if command == "cancel":
        print(api.cancel(ns.run, db=db, force=ns.force))
        return None
    raise UsageError(f"%chronum {command} must be the only line of its cell "
                     f"(or use `await chronum.aresume(...)`)")


async def run_line(line: str, *, expand: bool = True) -> Any:
    """A ``%chronum`` line, awaited on the kernel loop (resume and wait need the loop)."""
    ns = _parse_line(cell.expand_line(line) if expand else line)
    if ns is None:
        return None
    try:
        if ns.command == "resume":
            return await _resume(ns.run, ns.db)
        if ns.command == "wait":
            return await _wait()
        return _sync_command(ns)
    except ChronumError as exc:
        raise UsageError(str(exc)) from None


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@magics_class
class ChronumMagics(Magics):
    """Chronum's magics and their settings: ``%config ChronumMagics.max_parallel = 4``."""

    db = Unicode(None, allow_none=True, help="The database runs are recorded in (a path); "
                 "--db overrides it. Default: CHRONUM_DB, else .chronum/chronum.db.").tag(
                     config=True)
    max_parallel = Int(None, allow_none=True, help="Steps run at once when the magic line "
                       "has no --max-parallel. Default: what the flow says.").tag(config=True)
    show_after = Float(SHOW_AFTER, help="Seconds a cell's run lasts before its live view "
                       "appears (0: at once; negative: never, only the final picture).").tag(
                           config=True)
    timeline = Bool(False, help="Whether a cell's final picture includes the timeline of "
                    "its attempts.").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        state_of(shell).settings = self

    @validate("max_parallel")
    def _at_least_one(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None and value < 1:
            raise TraitError(f"max_parallel must be at least 1, got {value}")
        return value

    @cell_magic
    def chronum(self, line: str, body: str) -> Any:
        return self._cell(line, body)

    @line_magic("chronum")  # type: ignore[arg-type]
    def chronum_line(self, line: str) -> Any:
        ns = _parse_line(line)  # IPython expanded $var and {var} already
        if ns is None:
            return None
        if ns.command in ("resume", "wait"):
            if not _in_loop():
                return asyncio.run(run_line(line, expand=False))
            handles = current().handles
            if ns.command == "wait" and handles and handles[-1].done:
                return handles[-1].run
            raise UsageError(f"%chronum {ns.command} must be the only line of its cell "
                             f"(or use `await chronum.aresume(...)`)")
        try:
            return _sync_command(ns)
        except ChronumError as exc:
            raise UsageError(str(exc)) from None

    def _cell(self, line: str, body: str) -> Any:
        if not _in_loop():
            return asyncio.run(cell.run_cell(line, body, expand=False))
        opts = cell.parse_options(line)
        if not opts.background:
            line += " --background"  # a running loop cannot be blocked on from here
        return _start(cell.run_cell(line, body, expand=False))


# The help ``%%chronum?`` and ``%chronum?`` show (IPython shows the magic's docstring).
ChronumMagics.chronum.__doc__ = cell.CELL_HELP
ChronumMagics.chronum_line.__doc__ = LINE_HELP  # type: ignore[assignment]


def _start(coro: Any) -> Any:
    """Run ``run_cell`` up to its first await: with --background it returns at once."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise UsageError("%%chronum: cannot run here; put the magic at the top of its own cell")


def _display_once(obj: Any, bundle: Callable[[Any], dict[str, Any]]) -> None:
    if not cell.consume_shown(obj):
        display(bundle(obj), raw=True)  # type: ignore[no-untyped-call]


def _handle_bundle(handle: cell.RunHandle) -> dict[str, Any]:
    """A background run shown again (``handle`` as a cell's last line): one line, never a
    second live copy of its view (that one stays in the cell that started the run)."""
    if handle.view is not None and not handle.done:
        return handle.view.summary_bundle()
    run = handle.run
    return run._repr_mimebundle_() if run is not None else {"text/plain": repr(handle)}


def load_ipython_extension(ip: Any) -> None:
    state_of(ip)  # hooks the kernel's shutdown: it stops the runs of this kernel first
    magics = ChronumMagics(shell=ip)
    ip.register_magics(magics)
    if magics not in ip.configurables:  # so that %config ChronumMagics... reaches it
        ip.configurables.append(magics)
    if transform not in ip.input_transformers_cleanup:
        ip.input_transformers_cleanup.append(transform)
    formatter = ip.display_formatter.ipython_display_formatter
    formatter.for_type(api.Run, lambda run: _display_once(run, api.Run._repr_mimebundle_))
    formatter.for_type(cell.RunHandle, lambda h: _display_once(h, _handle_bundle))


def unload_ipython_extension(ip: Any) -> None:
    if transform in ip.input_transformers_cleanup:
        ip.input_transformers_cleanup.remove(transform)
    ip.configurables[:] = [c for c in ip.configurables if not isinstance(c, ChronumMagics)]
    formatter = ip.display_formatter.ipython_display_formatter
    for cls in (api.Run, cell.RunHandle):
        formatter.type_printers.pop(cls, None)
