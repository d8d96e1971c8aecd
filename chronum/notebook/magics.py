"""``%%chronum`` and ``%chronum``: the magics, the input transformer and the display hooks.

The transformer is what makes a ``%%chronum`` cell a real top-level ``await``: it rewrites the
cell into one line awaiting ``cell.run_cell``, and ipykernel decides to run a cell on its loop
from the transformed text. The registered magics stay as fallbacks for code that calls
``run_cell_magic`` directly: inside a running loop they cannot block, so they start the run in
the background and return its handle.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Callable, Mapping
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import display

from .. import api
from ..errors import ChronumError
from ..model import Flow
from ..session import RunOptions, prepare_resume
from . import cell
from .kernel import current

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


def _split(line: str) -> tuple[str, list[str], str | None]:
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%chronum: {exc}") from None
    db = None
    if "--db" in argv:
        i = argv.index("--db")
        if i + 1 >= len(argv):
            raise UsageError("%chronum: --db needs a path")
        db = argv[i + 1]
        del argv[i:i + 2]
    if not argv:
        raise UsageError("%chronum: expected one of: history, show RUN, resume RUN, "
                         "logs RUN [STEP], graph [RUN], cancel RUN [--force], cache list|clear, "
                         "wait")
    return argv[0], argv[1:], db


def _need_run(command: str, args: list[str]) -> str:
    if not args:
        raise UsageError(f"%chronum {command}: expected a run id, a prefix of one, or 'last'")
    return args[0]


def _logs(args: list[str], db: str | None) -> None:
    ref = _need_run("logs", args)
    api.show_logs(ref, args[1] if len(args) > 1 else None, db=db)


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


def _cache(args: list[str], db: str | None) -> Any:
    """``%chronum cache list [--flow NAME]``: the kept values as a DataFrame;
    ``%chronum cache clear [--flow NAME] [--older-than AGE]``: remove them (as ``chronum
    cache``)."""
    from .._args import parse_duration
    from ..store import Store, resolve_db_path
    from ..store import keys as cache_rows

    if not args or args[0] not in ("list", "clear"):
        raise UsageError("%chronum cache: expected list or clear "
                         "(clear [--flow NAME] [--older-than 7d])")
    action, rest = args[0], list(args[1:])
    flow = older = None
    while rest:
        option = rest.pop(0)
        if option not in ("--flow", "--older-than") or not rest:
            raise UsageError(f"%chronum cache {action}: unexpected {option!r}; options: "
                             "--flow NAME, --older-than AGE")
        value = rest.pop(0)
        if option == "--flow":
            flow = value
        else:
            older = parse_duration(value)
            if older is None or action != "clear":
                raise UsageError(f"%chronum cache: --older-than takes a duration like 7d, "
                                 f"got {value!r}")
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


def _sync_command(command: str, args: list[str], db: str | None) -> Any:
    if command == "history":
        limit = int(args[0]) if args else None
        return api.history(limit, db=db)
    if command == "show":
        return _show(_need_run("show", args), db)
    if command == "logs":
        return _logs(args, db)
    if command == "graph":
        return _graph(args, db)
    if command == "cache":
        return _cache(args, db)
    if command == "cancel":
        force = "--force" in args
        print(api.cancel(_need_run("cancel", [a for a in args if a != "--force"]), db=db,
                         force=force))
        return None
    raise UsageError(f"%chronum: unknown command {command!r}; expected history, show, "
                     "resume, logs, graph, cancel, cache or wait")


async def run_line(line: str) -> Any:
    """A ``%chronum`` line, awaited on the kernel loop (resume and wait need the loop)."""
    command, args, db = _split(line)
    try:
        if command == "resume":
            return await _resume(_need_run("resume", args), db)
        if command == "wait":
            return await _wait()
        return _sync_command(command, args, db)
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
    """Fallbacks for the transformer: used when a magic is called as a function."""

    @cell_magic
    def chronum(self, line: str, body: str) -> Any:
        if not _in_loop():
            return asyncio.run(cell.run_cell(line, body))
        opts = cell.parse_options(line)
        if not opts.background:
            line += " --background"  # a running loop cannot be blocked on from here
        return _start(cell.run_cell(line, body))

    @line_magic("chronum")  # type: ignore[arg-type]
    def chronum_line(self, line: str) -> Any:
        command, args, db = _split(line)
        if command in ("resume", "wait"):
            if not _in_loop():
                return asyncio.run(run_line(line))
            handles = current().handles
            if command == "wait" and handles and handles[-1].done:
                return handles[-1].run
            raise UsageError(f"%chronum {command} must be the only line of its cell "
                             f"(or use `await chronum.aresume(...)`)")
        try:
            return _sync_command(command, args, db)
        except ChronumError as exc:
            raise UsageError(str(exc)) from None


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
    if handle.view is not None and not handle.done:
        return handle.view.bundle()
    run = handle.run
    return run._repr_mimebundle_() if run is not None else {"text/plain": repr(handle)}


def load_ipython_extension(ip: Any) -> None:
    ip.register_magics(ChronumMagics)
    if transform not in ip.input_transformers_cleanup:
        ip.input_transformers_cleanup.append(transform)
    formatter = ip.display_formatter.ipython_display_formatter
    formatter.for_type(api.Run, lambda run: _display_once(run, api.Run._repr_mimebundle_))
    formatter.for_type(cell.RunHandle, lambda h: _display_once(h, _handle_bundle))


def unload_ipython_extension(ip: Any) -> None:
    if transform in ip.input_transformers_cleanup:
        ip.input_transformers_cleanup.remove(transform)
    formatter = ip.display_formatter.ipython_display_formatter
    for cls in (api.Run, cell.RunHandle):
        formatter.type_printers.pop(cls, None)
