"""Running one ``%%chronum`` cell: parse the options and the YAML, show the view, run, finish.

``run_cell`` is a coroutine: the input transformer turns a ``%%chronum`` cell into a top-level
``await`` of it, so the run happens on the kernel's own loop and the cell blocks like any other
while Cancel clicks and the Stop button keep working. ``--background`` starts the same coroutine
as a task in an empty ``contextvars.Context`` (so its messages go to whichever cell is running,
which is what nbclient and JupyterLab keep) and returns a ``RunHandle`` at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn, TypeVar

from IPython.core.error import UsageError
from IPython.display import DisplayHandle, display

from .. import api
from .._args import name_value
from ..engine import ReusePlan
from ..errors import ChronumError, RunFailedError, SpecError
from ..model import Flow
from ..render.html import Snapshot, plain_text, static_html
from ..render.svg import layout_sync, prefix_for
from ..session import RunOptions, new_run_id
from .kernel import current, settings
from .names import cellify_traceback
from .view import LiveView, Part

__all__ = ["CellOptions", "RunHandle", "cell_parser", "parse_flow", "parse_options", "run_cell",
           "run_with_view"]

#: Seconds a finished cell waits for its graph before sending the final picture without it.
LAYOUT_WAIT = 1.0
#: A cell's live view appears once its run has lasted this long. A run that ends sooner shows
#: only its final picture: a live view on screen for a blink costs more to make, send and store
#: than the run itself. ``--background`` runs show their view at once.
SHOW_AFTER = 0.25
#: Log lines a ``--raise`` error shows of a failed step that left no Python traceback.
TAIL_LINES = 20


CELL_HELP = """\
%%chronum [NAME] [OPTIONS]: run the cell's YAML as a flow, with a live view.

The cell's result (``_``) is the finished Run: run.status, run.outputs, run.steps.

Options:
  NAME                      the flow's name (instead of the YAML's `name:`)
  -p, --param NAME=VALUE    a value for a declared param; repeat for more
  --max-parallel N          steps run at once
  --retry N                 retries of a failed step, unless the step says otherwise
  --stop-on-fail            start no step after the first failure
  --background              return a handle at once; `%chronum wait` or
                            `await handle.wait()` gives the Run
  --dry-run                 check the flow (and its call: functions) and draw it
  --raise                   raise RunFailedError when the run does not succeed
  --db PATH                 the database the run is recorded in
  --cache / --no-cache      reuse steps whose key is unchanged / run every step
  --from STEP               re-run STEP and everything after it, reuse what came before
  --only STEP [STEP ...]    run just these steps, with upstream values from earlier runs
  --isolate                 run every call: step in a child process (cancel stops it)
  -h, --help                this help

$var and {var} in the line expand from the notebook's variables (papermill parameters
reach -p so). Errors name the cell's line as the editor counts it (the %%chronum line is 1).

Example:
  %%chronum etl -p day={DAY} --max-parallel 2
  params: {day: today}
  steps:
    - name: extract
      call: extract              # a function defined in this notebook
    - name: report
      run: echo "rows for $CHRONUM_PARAM_DAY"
      needs: [extract]

Line commands (history, show, logs, graph, compare, resume, cancel, wait): %chronum --help.
Settings (db, max_parallel, show_after, timeline): %config ChronumMagics.
"""


def expand_line(line: str) -> str:
    """``$var`` and ``{var}`` in a magic line, from the notebook's variables, as IPython
    expands the line of every other magic (a name it cannot find stays as written)."""
    from IPython import get_ipython
    from IPython.utils.text import DollarFormatter

    ip = get_ipython()
    if ip is None or ("$" not in line and "{" not in line):
        return line
    try:
        return str(DollarFormatter().vformat(line, args=[], kwargs=ip.user_ns))
    except Exception:  # as IPython does: an expression that fails leaves the line unchanged
        return line


class _Parser(argparse.ArgumentParser):
    """argparse that raises ``UsageError`` (shown without a traceback) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(message or f"{self.prog}: exit {status}")


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


_non_negative.__name__ = "count"  # argparse names the type in its message: "invalid count"


def cell_parser() -> _Parser:
    p = _Parser(prog="%%chronum", add_help=False)
    p.add_argument("name", nargs="?")
    p.add_argument("--max-parallel", type=int, dest="max_parallel")
    p.add_argument("--stop-on-fail", action="store_true", dest="stop_on_fail", default=None)
    p.add_argument("--retry", type=_non_negative)
    p.add_argument("--background", action="store_true")
    p.add_argument("--dry-run", action="store_true", dest="dry_run")
    p.add_argument("--raise", action="store_true", dest="raise_")
    p.add_argument("--db")
    p.add_argument("-p", "--param", type=name_value, action="append", default=[], dest="params")
    p.add_argument("--cache", action="store_true", default=None, dest="cache")
    p.add_argument("--no-cache", action="store_false", dest="cache")
    p.add_argument("--from", dest="from_step")
    p.add_argument("--only", nargs="+", default=[])
    p.add_argument("--isolate", action="store_true")
    return p


@dataclass(frozen=True, slots=True)
class CellOptions:
    """The magic line of a ``%%chronum`` cell."""

    name: str | None = None
    retry: int | None = None
    params: tuple[tuple[str, str], ...] = ()
    background: bool = False
    dry_run: bool = False
    raise_: bool = False
    #: How to run it (the cell's params are applied when its flow is parsed, not here).
    run: RunOptions = field(default_factory=RunOptions)
    #: ``--isolate``: every ``call:`` step runs in a child process (``isolate: process``).
    isolate: bool = False


def wants_help(line: str) -> bool:
    try:
        return any(a in ("-h", "--help") for a in shlex.split(line))
    except ValueError:
        return False


def parse_options(line: str) -> CellOptions:
    """The magic line; what it leaves out comes from ``%config ChronumMagics``."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%%chronum: {exc}") from None
    ns = cell_parser().parse_args(argv)
    if ns.max_parallel is not None and ns.max_parallel < 1:
        raise UsageError(f"%%chronum: --max-parallel must be at least 1, got {ns.max_parallel}")
    config = settings()
    max_parallel = ns.max_parallel if ns.max_parallel is not None else config.max_parallel
    return CellOptions(
        name=ns.name, retry=ns.retry, params=tuple(ns.params), background=ns.background,
        dry_run=ns.dry_run, raise_=ns.raise_,
        run=RunOptions(max_parallel=max_parallel, stop_on_fail=ns.stop_on_fail,
                       db=ns.db or config.db, cache=ns.cache, from_step=ns.from_step,
                       only=tuple(ns.only)),
        isolate=ns.isolate)


def parse_flow(body: str, opts: CellOptions, namespace: Mapping[str, Any] | None = None
               ) -> Flow:
    """The cell's YAML as a Flow; the magic line's NAME and ``--retry`` override the text.

    Lines are numbered as the editor numbers them: the ``%%chronum`` line is line 1. With a
    ``namespace`` (the notebook's), ``call:`` steps are checked too: the function exists and
    its parameters are fed (``chronum.spec._calls``)."""
    from ..spec import ParserRegistry, loads
    from ..spec._calls import check_calls

    text = "\n" + body  # the magic line, so YAML's line numbers are the editor's

    registry = ParserRegistry(entry_points=False)
    yaml_parser = registry.parser("yaml")
    assert yaml_parser is not None

    def parser(text: str, file: str) -> Any:
        doc = yaml_parser(text, file)
        if isinstance(doc, dict):
            if opts.name:
                doc["name"] = opts.name
            if opts.retry is not None:
                doc["defaultRetry"] = opts.retry
            if opts.isolate and isinstance(doc.get("steps"), list):
                for step in doc["steps"]:
                    if isinstance(step, dict) and "call" in step:
                        step.setdefault("isolate", "process")
        return doc

    registry.register("yaml", parser, extensions=(".yaml", ".yml"))
    try:
        flow = loads(text, filename="cell", default_name=opts.name or "cell",
                     params=dict(opts.params) or None, parsers=registry)
        if namespace is not None:
            problems = check_calls(flow, namespace, text=text)
            if problems:
                raise SpecError(problems)
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    # A cell has no file: resume finds its flow in the kernel, or parses the kept cell text.
    return replace(flow, source=None)


def _user_ns() -> Mapping[str, Any] | None:
    from IPython import get_ipython

    ip = get_ipython()
    return ip.user_ns if ip is not None else None


def _execution_count() -> int:
    from IPython import get_ipython

    ip = get_ipython()
    return int(getattr(ip, "execution_count", 0) or 0)


def mark_shown(obj: object) -> None:
    """``obj`` is this cell's result and its picture is already on screen: show it once."""
    current().shown[id(obj)] = _execution_count()


def consume_shown(obj: object) -> bool:
    return current().shown.pop(id(obj), None) == _execution_count()


class _Screen:
    """Where a cell shows its run: nothing at first, then the live view, then the final
    picture in its place (or in place of nothing, when the run ended before the view came)."""

    def __init__(self, view: LiveView | None) -> None:
        self.view = view
        #: The output the final picture goes to: the live view's header, or the picture's own.
        self.handle: DisplayHandle | Part | None = None
        self._timer: asyncio.TimerHandle | None = None

    def show(self) -> None:
        """Put the live view on screen (once; not after the run ended)."""
        self._timer = None
        if self.view is None or self.handle is not None or self.view.finished:
            return
        self.handle = self.view.build()

    def show_after(self, seconds: float) -> None:
        if seconds < 0:
            return  # %config ChronumMagics.show_after = -1: only the final picture
        if seconds == 0:
            self.show()
        else:  # the callback keeps this cell's context, so its output lands in this cell
            self._timer = asyncio.get_running_loop().call_later(seconds, self.show)

    def final(self) -> None:
        """The final picture, replacing the live view if it was shown."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.view is None:
            return
        bundle = self.view.static_bundle()
        if self.view.built:
            self.view.settle(bundle)  # the Cancel button and the live parts go
        elif self.handle is not None:
            self.handle.update(bundle, raw=True)
        else:
            self._display(bundle)

    def _display(self, bundle: dict[str, Any]) -> None:
        shown = display(bundle, raw=True, display_id=True)  # type: ignore[no-untyped-call]
        self.handle = shown if isinstance(shown, DisplayHandle) else None


class RunHandle:
    """A run going on in the background: ``await handle.wait()`` gives the finished ``Run``."""

    def __init__(self, flow: Flow, run_id: str, view: LiveView | None,
                 screen: _Screen) -> None:
        self.flow = flow
        self.run_id = run_id
        self.view = view
        self._screen = screen
        self.task: asyncio.Task[api.Run] | None = None

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()

    @property
    def run(self) -> api.Run | None:
        if self.task is None or not self.task.done() or self.task.cancelled():
            return None
        return None if self.task.exception() is not None else self.task.result()

    @property
    def status(self) -> str:
        if not self.done:
            return "running"
        run = self.run
        return run.status if run is not None else "cancelled"

    def cancel(self) -> None:
        if self.view is not None:
            self.view.cancel()
        elif self.task is not None:
            self.task.cancel()

    async def wait(self) -> api.Run:
        """The finished Run; re-sends the final picture so this cell's reader sees it too."""
        assert self.task is not None
        run = await asyncio.shield(self.task)
        if self.view is not None and self.view.built:
            self.view.settle(self.view.static_bundle(), force=True)
        elif self.view is not None and self._screen.handle is not None:
            self._screen.handle.update(self.view.static_bundle(), raw=True)
        return run

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id} {self.flow.name}: {self.status}>"


#: Tasks a cell started that can outlive its coroutine (a layout still drawing when the run
#: was cancelled or failed, a run the Cancel button cancelled while the cell was interrupted):
#: the loop holds tasks only weakly, and a pending task collected as garbage is reported as
#: "Task was destroyed but it is pending!" into whichever cell runs then.
_TASKS: set[asyncio.Future[Any]] = set()
T = TypeVar("T")


def _keep(task: asyncio.Future[T]) -> asyncio.Future[T]:
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
    return task


async def _execute(flow: Flow, options: RunOptions, view: LiveView | None, screen: _Screen,
                   plan: ReusePlan | None) -> api.Run:
    """Run the flow with the view subscribed; a Cancel click gives a ``cancelled`` Run."""
    layout = _keep(asyncio.ensure_future(view.layout())) if view is not None else None
    if view is not None:
        options = replace(options, subscribers=(*options.subscribers, view))
    run_task = _keep(asyncio.ensure_future(api.execute(flow, options, plan)))
    if view is not None:
        view.attach(run_task)
    try:
        run = await run_task
    except asyncio.CancelledError:
        me = asyncio.current_task()
        interrupted = me is not None and me.cancelling() > 0
        _finish(view, screen, "cancelled", layout)
        if interrupted or view is None or not view.cancel_requested:
            # The Stop button: the cell ends interrupted, the run is recorded cancelled; one
            # line says so, not a traceback through Chronum's frames.
            raise _one_line(asyncio.CancelledError(
                f"run {options.run_id} cancelled; `%chronum resume {options.run_id}` runs "
                "the rest")) from None
        run = _cancelled_run(flow, options, view)
    except BaseException:
        _finish(view, screen, "failed", layout)
        raise
    else:
        if layout is not None and not layout.done():
            # Usually done long before; a huge graph is sent later rather than hold the cell.
            await asyncio.wait({layout}, timeout=LAYOUT_WAIT)
        if view is not None and settings().timeline:
            view.footer = _timeline(run)
        _finish(view, screen, run.status, layout)
    return run


def _one_line(exc: BaseException) -> BaseException:
    """``exc`` shown by IPython as its message alone (IPython asks an exception for
    ``_render_traceback_`` before drawing a traceback)."""
    lines = str(exc).split("\n")
    exc._render_traceback_ = lambda: lines  # type: ignore[attr-defined]
    return exc


def _timeline(run: api.Run) -> str:
    from ..render.timeline import timeline_svg
    from ..store import Store

    with Store(run.db) as store:
        attempts = store.attempts(run.run_id)
    return f'<div class="chronum-timeline-box">{timeline_svg(attempts, run.flow.step_names)}</div>'


def _user_traceback(lines: list[str]) -> list[str]:
    """The last Python traceback in a step's log (the user's own frames: the executor drops
    Chronum's), else the log's last lines."""
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("Traceback (most recent call last):"):
            return lines[i:]
    return lines[-TAIL_LINES:]


def _run_failed(run: api.Run, view: LiveView | None) -> RunFailedError:
    """``--raise``: one RunFailedError naming the failed steps and why, shown with each
    step's own traceback (or log tail) rather than Chronum's frames."""
    failed = {name: reason for name, reason in run.errors.items()}
    summary = "; ".join(f"{name}: {reason}" for name, reason in failed.items()) or run.status
    message = f"run {run.run_id} of {run.flow.name} {run.status}: {summary}"
    shown = [f"RunFailedError: {message}"]
    for name in failed:
        logged = list(view.log_lines(name)) if view is not None else []
        if not logged:
            logged = _stored_tail(run, name)
        if logged:
            shown.append(f"--- step {name} ---")
            shown.extend(cellify_traceback(_user_traceback(logged)))
    error = RunFailedError(message)
    error._render_traceback_ = lambda: shown  # type: ignore[attr-defined]
    return error


def _stored_tail(run: api.Run, step: str) -> list[str]:
    from ..store import Store

    with Store(run.db) as store:
        for row in store.step_rows(run.run_id):
            if row["step"] == step:
                return str(row.get("log_tail") or "").splitlines()
    return []


def _finish(view: LiveView | None, screen: _Screen, status: str,
            layout: asyncio.Future[None] | None) -> None:
    """Final flush and final picture. A layout still running (``dot`` on a large flow) is
    not waited for: when it ends, the picture is sent again with the graph, in an empty
    context so that it reaches whichever cell is running then (nbclient keeps only those)."""
    if view is None:
        return
    view.finish(status)
    view.refresh = screen.final  # again when a cancelled step's thread ends later
    screen.final()
    shown = screen.handle
    if shown is not None and layout is not None and not layout.done():
        def resend(_: asyncio.Future[None]) -> None:
            if view.graph is not None:
                shown.update(view.static_bundle(), raw=True)

        layout.add_done_callback(resend, context=contextvars.Context())


def _cancelled_run(flow: Flow, options: RunOptions, view: LiveView) -> api.Run:
    from ..store import resolve_db_path

    started = view.started_at_epoch or time.time()
    return api.Run(view.run_id, flow, "cancelled", {}, resolve_db_path(options.db),
                   {"run": "cancelled"}, started_at=started,
                   finished_at=started + (view.snap.elapsed_s or 0.0))


def _has_kernel() -> bool:
    from IPython import get_ipython

    return getattr(get_ipython(), "kernel", None) is not None


def _dry_run(flow: Flow) -> None:
    snap = Snapshot(flow, "dry-run", status="pending")
    graph = layout_sync(flow, prefix_for("dry_run"))
    display({"text/plain": plain_text(flow.name, "dry-run", len(flow.steps)),  # type: ignore[no-untyped-call]
             "text/html": static_html(snap, graph, title="dry run")}, raw=True)


async def run_cell(line: str, body: str, *, expand: bool = True
                   ) -> api.Run | RunHandle | None:
    """The whole ``%%chronum`` cell; returns the Run (or a handle with ``--background``).

    ``expand``: whether ``$var``/``{var}`` in the line are still to be expanded (the magic
    functions get the line from IPython already expanded)."""
    cell_started = time.monotonic()
    if expand:
        line = expand_line(line)
    if wants_help(line):
        print(CELL_HELP, end="")
        return None
    opts = parse_options(line)
    flow = parse_flow(body, opts, _user_ns())
    current().last_flow = flow
    if opts.dry_run:
        _dry_run(flow)
        return None
    # Kept with the run, so `%chronum resume` works in a later kernel too.
    options = replace(opts.run, origin={"kind": "cell", "line": line, "text": body})
    run = await run_with_view(flow, options, cell_started, background=opts.background)
    if opts.raise_ and isinstance(run, api.Run) and not run.ok:
        raise _run_failed(run, current().views.get(run.run_id)) from None
    return run


async def run_with_view(flow: Flow, options: RunOptions, cell_started: float, *,
                        background: bool = False, plan: ReusePlan | None = None,
                        ) -> api.Run | RunHandle:
    """Run ``flow`` from a cell with the live view: a blocking await, or a background handle;
    shared by ``%%chronum``, ``%chronum resume`` and ``await flow.arun()``."""
    from IPython import get_ipython

    ip = get_ipython()
    state = current()
    if options.namespace is None and ip is not None:
        options = replace(options, namespace=ip.user_ns)
    run_id = options.run_id or new_run_id()
    options = replace(options, run_id=run_id)
    state.flows[run_id] = flow
    view = LiveView(flow, run_id, build=False) if _has_kernel() else None
    if view is not None:
        view.created_at = cell_started  # "time to first graph" counts from the cell's start
        state.views[run_id] = view
    screen = _Screen(view)
    screen.show_after(0.0 if background else settings().show_after)
    coro = _execute(flow, options, view, screen, plan)
    if background:
        handle = RunHandle(flow, run_id, view, screen)
        handle.task = asyncio.get_running_loop().create_task(coro, context=contextvars.Context())
        state.handles.append(handle)
        if view is not None:
            mark_shown(handle)
        return handle
    try:
        run = await coro
    except ChronumError as exc:
        raise UsageError(str(exc)) from None
    if view is not None:
        mark_shown(run)
    return run
