"""One function per ``chronum`` command; each returns the exit code."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..api import Run, cancel, cancel_on_signals, execute, load, resume_with, show_logs
from ..errors import RunNotFoundError, SpecError, UsageError
from ..session import RunOptions
from ..state import run_words
from ..store.queries import HISTORY_COLUMNS, STEP_COLUMNS
from . import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from .display import Printer, format_table, printer_for


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)


def _use_pidfd_child_watcher() -> None:
    """On Python 3.11, watch step processes through pidfds instead of a thread per process.

    The default ThreadedChildWatcher starts one thread per subprocess to wait for it, which
    W3 in ``benchmarks/`` (many short processes) pays for; 3.12 uses pidfds by default. Only
    the CLI does this: it owns its event loop, a notebook kernel does not.
    """
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))  # refused by some sandboxes and old kernels
    except OSError:
        return
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)


async def _run_with_signals(coro_factory: Any) -> Any:
    """Run the coroutine as a task that every fatal signal (``api.FATAL_SIGNALS``: SIGINT,
    SIGTERM, SIGHUP, ...) cancels, so steps are stopped and the run recorded ``cancelled``."""
    _use_pidfd_child_watcher()
    received: list[int] = []
    try:
        return await cancel_on_signals(coro_factory(), received)
    except asyncio.CancelledError:
        if received:
            raise _Stopped(received[0]) from None
        raise


class _Stopped(KeyboardInterrupt):
    """A fatal signal stopped the run; the exit code is the shell's ``128 + signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _execute(args: argparse.Namespace, start: Callable[[RunOptions], Awaitable[Run]]) -> int:
    """Shared by run and resume: live printer, the run, the final line or JSON."""
    printer: Printer = printer_for(args.format, quiet=args.quiet, colour=args.color)
    options = RunOptions(max_parallel=args.max_parallel, stop_on_fail=args.stop_on_fail,
                         db=args.db, events_jsonl=args.events_jsonl, subscribers=(printer,),
                         cache=getattr(args, "cache", None),
                         from_step=getattr(args, "from_step", None),
                         only=tuple(getattr(args, "only", ())),
                         subscriber_names=tuple(args.subscribers))
    try:
        run = asyncio.run(_run_with_signals(lambda: start(options)))
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, _Stopped) else signal.SIGINT
        printer.close()
        what = "interrupted" if signum == signal.SIGINT else f"stopped by {_signal_name(signum)}"
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            print(f"chronum: {what}; the run was recorded as cancelled "
                  "(`chronum resume last` runs the rest)", file=sys.stderr)
        return EXIT_INTERRUPTED if signum == signal.SIGINT else 128 + signum
    printer.close()
    if args.format == "json":
        print(_json(_show_object(run.run_id, args.db)))
    else:
        printer.summary(run)
    return EXIT_OK if run.status == "succeeded" else EXIT_FAILED


def cmd_run(args: argparse.Namespace) -> int:
    flow = load(args.file, params=dict(args.params) or None)
    if args.executor:
        steps = tuple(replace(s, executor=args.executor) if s.executor == "python" else s
                      for s in flow.steps)
        flow = replace(flow, steps=steps)
    return _execute(args, lambda options: execute(flow, options))


def cmd_resume(args: argparse.Namespace) -> int:
    return _execute(args, lambda options: resume_with(
        args.run, replace(options, again=args.again), kill=args.kill))


def cmd_cancel(args: argparse.Namespace) -> int:
    _store(args.db).close()  # says so when no run was ever recorded there
    print(cancel(args.run, db=args.db, force=args.force))
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from ..engine.cache import input_warnings, output_warnings

    flow = load(args.file)
    for warning in (*input_warnings(flow), *output_warnings(flow)):
        print(f"chronum: warning: {warning}", file=sys.stderr)
    if Path(args.file).suffix.lower() in (".yaml", ".yml", ".json"):
        from ..spec import check_calls  # a call: that would fail at run time fails here

        problems = check_calls(flow, text=Path(args.file).read_text(encoding="utf-8"))
        if problems:
            raise SpecError(problems)
    n = len(flow.steps)
    print(f"{args.file}: ok — flow '{flow.name}', {n} step{'s' if n != 1 else ''}")
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    from ..render.dot import to_dot
    from ..render.svg import render

    flow = load(args.file)
    if args.output is None:
        sys.stdout.write(to_dot(flow))
        return EXIT_OK
    out = Path(args.output)
    fmt = out.suffix.lower().lstrip(".")
    if fmt in ("dot", "gv"):
        data = to_dot(flow).encode("utf-8")
    elif fmt in ("svg", "png", "pdf"):
        data = render(flow, fmt)
    else:
        raise UsageError(f"cannot tell the format of {args.output!r}; use .svg, .png or .dot")
    try:
        out.write_bytes(data)
    except OSError as exc:
        why = exc.strerror.lower() if exc.strerror else str(exc)
        hint = ""
        if isinstance(exc, FileNotFoundError):
            hint = f"; create the folder {out.parent} first"
        elif isinstance(exc, IsADirectoryError):
            hint = "; give a file name, not a folder"
        raise UsageError(f"cannot write {out}: {why}{hint}") from None
    print(f"wrote {out}")
    return EXIT_OK


def _store(db: str | None) -> Any:
    from ..store import Store, resolve_db_path

    path = resolve_db_path(db)
    if not path.exists():
        raise RunNotFoundError(f"no runs recorded yet: {path} does not exist "
                           "(run a flow with `chronum run FLOW.yaml`, or pass --db)")
    return Store(path)


#: ``chronum show``'s step columns: the frame's, less the run id said once above them.
_STEP_COLUMNS = tuple(c for c in STEP_COLUMNS if c != "run_id")
#: ``chronum history``'s table: the frame's columns, less the end time (the duration says it).
_HISTORY_TABLE = tuple(c for c in HISTORY_COLUMNS if c != "finished_at")


def cmd_history(args: argparse.Namespace) -> int:
    from ..store.frames import to_json_rows

    store = _store(args.db)
    try:
        rows = to_json_rows(store.history(limit=args.limit))
    finally:
        store.close()
    if args.format == "json":
        print(_json(rows))
    elif args.format == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=list(HISTORY_COLUMNS),
                                extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        print(format_table(rows, _HISTORY_TABLE))
    return EXIT_OK


def _show_object(ref: str, db: str | None) -> dict[str, Any]:
    from ..store.frames import to_json_rows

    store = _store(db)
    try:
        info = store.run(store.resolve_run(ref))
        rows = store.step_rows(info["run_id"])
    finally:
        store.close()
    head = to_json_rows([{k: v for k, v in info.items() if k != "steps"}])[0]
    outputs = {row["step"]: row["outputs"] for row in rows if row.get("outputs")}
    return {
        "run_id": head["run_id"],
        "flow": head["flow"],
        "status": head["status"],
        "started_at": head["started_at"],
        "finished_at": head["finished_at"],
        "steps": [{k: row.get(k) for k in _STEP_COLUMNS}
                  for row in to_json_rows(info["steps"])],
        "reason": head.get("reason"),
        "n_continued": head.get("n_continued") or 0,
        "outputs": outputs,
    }


def cmd_show(args: argparse.Namespace) -> int:
    obj = _show_object(args.run, args.db)
    if args.format == "json":
        print(_json(obj))
        return EXIT_OK
    words = run_words(obj["status"], obj["n_continued"], obj["reason"])
    print(f"run {obj['run_id']}  flow {obj['flow']}  {words}  "
          f"started {obj['started_at']}  finished {obj['finished_at'] or '-'}")
    print(format_table(obj["steps"], _STEP_COLUMNS))
    for step, written in obj["outputs"].items():
        for key, value in written.items():
            print(f"{step}.outputs.{key} = {value if chr(10) not in value else repr(value)}")
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    _store(args.db).close()  # says so when no run was ever recorded there
    show_logs(args.run, args.step, db=args.db)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from ..serve import serve
    from ..store import resolve_db_path

    serve(resolve_db_path(args.db), host=args.host, port=args.port, token=args.token,
          open_browser=args.open)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from ..exporters.tables import export

    store = _store(args.db)
    try:
        export(store, args.table, args.format, flow=args.flow, since=args.since,
               output=args.output)
    finally:
        store.close()
    return EXIT_OK


def cmd_completion(args: argparse.Namespace) -> int:
    import shtab  # only here: no other command should pay for it

    from . import _parser

    sys.stdout.write(shtab.complete(_parser(), shell=args.shell))
    return EXIT_OK


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def cmd_cache(args: argparse.Namespace) -> int:
    from ..store import keys

    store = _store(args.db)
    try:
        if args.cache_command == "clear":
            n, freed = keys.clear_values(store, args.flow, args.older_than)
            print(f"removed {n} kept value{'s' if n != 1 else ''} ({_size(freed)})")
            return EXIT_OK
        entries = keys.cache_entries(store, args.flow)
    finally:
        store.close()
    if not entries:
        print("no kept values")
        return EXIT_OK
    from ..store.frames import to_json_rows

    rows = [{**row, "size": _size(e["size"]) + ("" if e["exists"] else " (gone)")}
            for e, row in zip(entries, to_json_rows(entries), strict=True)]
    print(format_table(rows, ("flow", "step", "run_id", "size", "saved_at")))
    total = sum(e["size"] for e in entries if e["exists"])
    print(f"{len(entries)} kept value{'s' if len(entries) != 1 else ''}, {_size(total)}")
    return EXIT_OK
