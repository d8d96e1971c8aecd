"""The public verbs: load, run, resume, and the history as DataFrames; ``Run``.

Thin on purpose: a run is assembled by ``session``, recorded by ``store`` and drawn by
``render``. Every verb that runs takes the same keywords (``RunKeywords``), checked by mypy in
user code and at call time, before anything starts.

The verbs that run import ``session`` (and with it asyncio) when called, so a script that only
reads the history as DataFrames never loads the engine.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, TypedDict, Unpack, runtime_checkable

from .errors import RunFailedError, UsageError
from .eventbus import Subscriber
from .executors import ExecutorRegistry
from .model import Flow, Step
from .store import Store, frames, resolve_db_path

if TYPE_CHECKING:
    import pandas as pd

    from .engine import ReusePlan
    from .render.dot import Graph
    from .render.timeline import RunPicture
    from .session import Finished, RunOptions

__all__ = [
    "FlowBuilder",
    "Run",
    "RunKeywords",
    "aresume",
    "arun",
    "attempts",
    "blocking",
    "cancel",
    "compare",
    "events",
    "execute",
    "history",
    "in_running_loop",
    "load",
    "options_of",
    "recorded_flow",
    "resume",
    "resume_with",
    "run",
    "runs",
    "show",
    "show_logs",
    "steps",
]

PathLike = str | os.PathLike[str]


@runtime_checkable
class FlowBuilder(Protocol):
    """A flow written in Python (``chronum.Flow``): ``build()`` gives the validated model and
    registers its step functions with the session."""

    name: str

    def build(self) -> Flow: ...


class RunKeywords(TypedDict, total=False):
    """The options every running verb takes (``run``, ``arun``, ``resume``, ``Flow.run``...)."""

    #: Values for the flow's declared params.
    params: Mapping[str, str] | None
    #: At most this many steps at once (overrides ``maxParallel``).
    max_parallel: int | None
    #: Stop at the first failure (overrides ``stopOnFail``).
    stop_on_fail: bool | None
    #: The SQLite file (default: ``$CHRONUM_DB`` or ``.chronum/chronum.db``).
    db: PathLike | None
    #: Append every event as one JSON line to this file.
    events_jsonl: PathLike | None
    #: Callables that receive every event of the run.
    subscribers: Iterable[Subscriber]
    #: The executors to use (default: the built-ins and installed plugins).
    executors: ExecutorRegistry | None
    #: The new run's id (default: 12 random hex digits).
    run_id: str | None
    #: Seconds between SIGTERM and SIGKILL when a step is stopped.
    grace: float | None
    #: Where ``call: name`` finds functions given without a module.
    namespace: Mapping[str, Any] | None
    #: True caches every step without its own ``cache:``; False reuses nothing (keys are
    #: still recorded); None (the default) follows the flow.
    cache: bool | None
    #: Run this step and everything downstream; reuse the latest results upstream.
    from_step: str | None
    #: Run just these steps, reusing the latest results of what they need.
    only: Iterable[str]


_KEYWORDS = frozenset(RunKeywords.__annotations__)


def options_of(keywords: Mapping[str, Any]) -> RunOptions:
    """``RunOptions`` from a verb's keywords; an unknown keyword is a TypeError at once."""
    from .session import RunOptions

    unknown = sorted(set(keywords) - _KEYWORDS)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(_KEYWORDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise TypeError(f"unknown run option {unknown[0]!r}{hint}")
    given = dict(keywords)
    if "subscribers" in given:
        given["subscribers"] = tuple(given["subscribers"])
    if "only" in given:
        given["only"] = (given["only"],) if isinstance(given["only"], str) \
            else tuple(given["only"] or ())
    return RunOptions(**given)


def load(path: PathLike, *, params: Mapping[str, str] | None = None) -> Flow:
    """Load and validate a flow file; raises ``SpecError`` listing every problem."""
    from .spec import load as spec_load

    return spec_load(path, params=params)


class Run:
    """A finished (or, while it runs, a running) run: its id, status and python outputs."""

    def __init__(self, run_id: str, flow: Flow, status: str, outputs: Mapping[str, Any],
                 db: Path, errors: Mapping[str, str] | None = None,
                 started_at: float = 0.0, finished_at: float | None = None,
                 definition: FlowBuilder | None = None) -> None:
        self.run_id = run_id
        self.flow = flow
        self._status = status
        self.outputs = dict(outputs)
        self.errors = dict(errors or {})
        self.db = db
        self.started_at = started_at
        self.finished_at = finished_at
        #: The ``chronum.Flow`` (SDK) this run came from, if any: resume rebuilds it.
        self.definition = definition

    @classmethod
    def of(cls, finished: Finished, definition: FlowBuilder | None = None) -> Run:
        return cls(finished.run_id, finished.flow, finished.status, finished.outputs,
                   finished.db, finished.errors, finished.started_at, finished.finished_at,
                   definition)

    @property
    def status(self) -> str:
        """How the run ended; a cancelled run one of whose step functions still runs in its
        thread (Python cannot stop it) says so until that thread ends."""
        if self._status == "cancelled" and _still_running(self.run_id):
            return STILL_RUNNING
        return self._status

    @status.setter
    def status(self, value: str) -> None:
        self._status = value

    @property
    def still_running(self) -> tuple[str, ...]:
        """The steps whose function's thread outlived their cancel or timeout and still runs."""
        return _still_running(self.run_id)

    @property
    def ok(self) -> bool:
        return self._status == "succeeded"

    @property
    def duration_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    @property
    def steps(self) -> pd.DataFrame:
        return steps(self.run_id, db=self.db)

    @property
    def attempts(self) -> pd.DataFrame:
        return attempts(self.run_id, db=self.db)

    @property
    def events(self) -> pd.DataFrame:
        return events(self.run_id, db=self.db)

    def raise_for_status(self) -> Run:
        if not self.ok:
            failed = ", ".join(f"{k}: {v}" for k, v in self.errors.items()) or self.status
            raise RunFailedError(f"run {self.run_id} of {self.flow.name} {self.status}: {failed}")
        return self

    def resume(self, *, again: bool = False, **options: Unpack[RunKeywords]) -> Run:
        """Run again what did not succeed in this run (see ``chronum.resume``)."""
        options.setdefault("db", self.db)
        return resume(self.run_id, flow=self.definition, again=again, **options)

    async def aresume(self, *, again: bool = False, **options: Unpack[RunKeywords]) -> Run:
        options.setdefault("db", self.db)
        return await aresume(self.run_id, flow=self.definition, again=again, **options)

    def graph(self) -> Graph:
        """The flow's graph, each step coloured by the state recorded for it."""
        from .render.dot import Graph

        store = _open_store(self.db)
        with contextlib.closing(store):
            states = {row["step"]: row["status"] for row in store.steps(self.run_id)}
        return Graph(self.flow, states)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """Rich display in Jupyter: the final picture, drawn from the step rows stored."""
        from .render.html import run_bundle
        from .render.svg import graph_for

        try:
            store = _open_store(self.db)
            with contextlib.closing(store):
                rows = store.step_rows(self.run_id)
        except Exception:  # a display must not raise: show what the Run object itself knows
            rows = []
        return run_bundle(self.flow, self.run_id, self.status, self.duration_s, rows,
                          graph_for(self.run_id, self.flow), include=include, exclude=exclude)

    def __repr__(self) -> str:
        took = f", {self.duration_s:.1f}s" if self.duration_s is not None else ""
        return (f"<Run {self.run_id} {self.flow.name}: {self.status} "
                f"({len(self.flow.steps)} steps{took})>")


#: What ``Run.status`` and the ``reason`` of ``steps()`` say of a step whose function's thread
#: still runs after its cancel or timeout (the python executor's wording).
STILL_RUNNING = "cancelled — still running in the background"


def _still_running(run_id: str) -> tuple[str, ...]:
    """The steps of ``run_id`` whose thread still runs in this process. Only calls made here
    can be running: without the python executor loaded (a script reading the history), none
    are, and it is not imported (it would bring asyncio)."""
    python = sys.modules.get("chronum.executors.python")
    return python.still_running(run_id) if python is not None else ()


def _open_store(db: PathLike | None) -> Store:
    path = resolve_db_path(db)
    if path.exists():
        return Store(path)
    # Nothing was recorded there: the reader gets an empty store in memory, named by the path
    # in its messages, rather than making the file and its folders (a misspelt db= in a
    # notebook would leave them behind, and show an empty history as if it were the real one).
    store = Store(":memory:")
    store.path = path
    return store


def _model(flow: Flow | FlowBuilder | PathLike, params: Mapping[str, str] | None
           ) -> tuple[Flow, FlowBuilder | None]:
    """The model to run, with ``params`` applied, and the builder it came from (if any)."""
    from .session import with_params

    if isinstance(flow, Flow):
        return with_params(flow, params), None
    if isinstance(flow, FlowBuilder):
        return with_params(flow.build(), params), flow
    return load(flow, params=params), None


async def execute(flow: Flow | FlowBuilder | PathLike, options: RunOptions,
                  plan: ReusePlan | None = None) -> Run:
    """Run ``flow`` with typed ``options`` (and a reuse ``plan`` when it continues a run):
    what ``arun`` and ``aresume`` do, for front ends that build the options themselves."""
    from .session import start

    model, definition = _model(flow, options.params)
    finished = await start(model, replace(options, params=None), plan)
    return Run.of(finished, definition)


async def arun(flow: Flow | FlowBuilder | PathLike, **options: Unpack[RunKeywords]) -> Run:
    """Run a flow on the running event loop and record it; never raises for a failed run.

    ``flow`` is a ``chronum.model.Flow``, a ``chronum.Flow`` of the SDK, or a path to a flow
    file. Cancelling the awaiting task cancels the run cleanly: its steps are stopped and it
    is recorded ``cancelled``.
    """
    return await execute(flow, options_of(options))


def in_running_loop() -> bool:
    """Whether this thread is inside a running asyncio loop (a notebook cell, say)."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


#: Signals whose default action ends the process. Each one stops the steps first and records
#: the run ``cancelled``: a closed terminal (SIGHUP) must not leave steps running unrecorded.
FATAL_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM",
                 "SIGXCPU")


async def cancel_on_signals(coro: Awaitable[Any], received: list[int], *,
                            only_unhandled: bool = False) -> Any:
    """Await ``coro`` as a task that any of ``FATAL_SIGNALS`` cancels; each signal caught is
    appended to ``received``.

    ``only_unhandled`` leaves alone a signal the program already handles itself (a script's
    own SIGTERM handler, say). Outside the main thread nothing can be installed: Python only
    delivers signals there.
    """
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(coro)

    def stop(signum: int) -> None:
        received.append(signum)
        task.cancel()

    installed = []
    for name in FATAL_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        if only_unhandled and signal.getsignal(signum) not in (signal.SIG_DFL,
                                                               signal.default_int_handler):
            continue
        try:
            loop.add_signal_handler(signum, stop, signum)
        except (ValueError, RuntimeError, NotImplementedError):
            continue
        installed.append(signum)
    try:
        return await task
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


#: Set by the notebook extension: runs a flow with a cell's live view (a blocking
#: ``chronum.run`` or ``flow.run()`` in a cell shows the view ``%%chronum`` shows).
view_runner: Callable[[Flow | FlowBuilder | PathLike, RunOptions], Awaitable[Run]] | None = None


def blocking(make: Callable[[], Awaitable[Any]]) -> Any:
    """Await ``make()`` to the end from a thread that is inside a running event loop (a
    notebook cell), blocking it.

    That loop cannot be re-entered, so the run gets a private loop in a worker thread, and
    this thread waits. The kernel's Stop button (SIGINT, a ``KeyboardInterrupt`` here)
    cancels the run there, waits until its steps are stopped and it is recorded
    ``cancelled``, then goes on as the interrupt would have. Chosen over ``nest_asyncio2``
    (see docs/notebook.md): nothing of the kernel's own loop is patched, and the cells that
    Run All queued behind this one wait, untouched, until it returns.
    """
    import asyncio
    import concurrent.futures
    import contextvars
    import threading

    done: concurrent.futures.Future[Any] = concurrent.futures.Future()
    started: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = \
        concurrent.futures.Future()

    def work() -> None:
        loop = asyncio.new_event_loop()
        try:
            task = loop.create_task(_awaited(make))
            started.set_result((loop, task))
            try:
                done.set_result(loop.run_until_complete(task))
            except BaseException as exc:
                done.set_exception(exc)
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    # The cell's context (IPython's and ipykernel's context variables) goes with the run.
    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(work,), name="chronum-blocking",
                     daemon=True).start()
    try:
        return done.result()
    except KeyboardInterrupt:
        loop, task = started.result()
        loop.call_soon_threadsafe(task.cancel)
        with contextlib.suppress(BaseException):
            done.result()
        raise


async def _awaited(make: Callable[[], Awaitable[Any]]) -> Any:
    return await make()


def _sync(name: str, coro_fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if in_running_loop():
        return blocking(lambda: coro_fn(*args, **kwargs))
    import asyncio

    received: list[int] = []
    try:
        return asyncio.run(cancel_on_signals(coro_fn(*args, **kwargs), received,
                                             only_unhandled=True))
    except asyncio.CancelledError:
        if not received:
            raise
    # The run is recorded cancelled and its steps are stopped: now end as the signal would
    # have ended the script had Chronum not caught it.
    import signal

    signum = received[0]
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    raise SystemExit(128 + signum)  # only if the signal is blocked in this thread


def run(flow: Flow | FlowBuilder | PathLike, **options: Unpack[RunKeywords]) -> Run:
    """Run a flow to the end (blocking); see ``arun`` for the options."""
    checked = options_of(options)
    if in_running_loop() and view_runner is not None:
        runner = view_runner
        with_view: Run = blocking(lambda: runner(flow, checked))
        return with_view
    result: Run = _sync("run", execute, flow, checked)
    return result


async def resume_with(ref: str, options: RunOptions, flow: Flow | FlowBuilder | None = None,
                      *, kill: bool = True) -> Run:
    """``aresume`` with typed ``options``, for front ends that build them themselves.

    What the resumed run left running (its runner died) is stopped first; with ``kill=False``
    the resume is refused instead, naming it (``chronum resume --no-kill``)."""
    from .session import prepare_resume, start, with_params

    definition = flow if isinstance(flow, FlowBuilder) else None

    def choose(run_id: str, info: Mapping[str, Any]) -> Flow | None:
        if definition is not None:
            return with_params(definition.build(), info.get("params") or None)
        return flow if isinstance(flow, Flow) else None

    resumption = prepare_resume(ref, db=options.db, choose=choose, again=options.again,
                                kill=kill)
    finished = await start(resumption.flow, options, resumption.plan)
    return Run.of(finished, definition)


async def aresume(ref: str, *, flow: Flow | FlowBuilder | None = None, again: bool = False,
                  **options: Unpack[RunKeywords]) -> Run:
    """Run again what did not succeed in run ``ref`` (an id, a unique prefix, or ``last``).

    The flow is reloaded from its file (by the absolute path stored with the run), unless
    ``flow`` gives it (``Run.resume`` of a ``chronum.Flow`` run passes the flow object as it
    is now in this process); a flow with another name, steps or needs is refused. One
    process at a time resumes a run; a run whose resume succeeded is resumed again only with
    ``again=True``.
    """
    return await resume_with(ref, replace(options_of(options), again=again), flow)


def resume(ref: str, *, flow: Flow | FlowBuilder | None = None, again: bool = False,
           **options: Unpack[RunKeywords]) -> Run:
    """Blocking ``aresume``."""
    result: Run = _sync("resume", aresume, ref, flow=flow, again=again, **options)
    return result


def cancel(ref: str, *, db: PathLike | None = None, force: bool = False) -> str:
    """Record run ``ref`` ``cancelled`` when its runner is gone (killed, or on a machine that
    went away), stopping the processes and containers it left; returns what was done.

    A run still running on this host is refused (stop its process: it records the run
    cancelled itself); a run recorded by another host needs ``force=True``.
    """
    from .session import cancel_run

    return cancel_run(ref, db=db, force=force)


def history(limit: int | None = None, *, flow: str | None = None, status: str | None = None,
            db: PathLike | None = None) -> pd.DataFrame:
    """One row per run, newest first; ``flow=`` and ``status=`` keep only the runs of that
    flow and in that state."""
    with _open_store(db) as store:
        return frames.history_frame(store, limit, flow=flow, status=status)


#: ``chronum.runs()``: the name a reader guesses beside ``steps()``, ``attempts()`` and
#: ``events()`` (and ``chronum export runs``); the same frame as ``history()``.
runs = history


def _selection(flow: str | None, since: Any, until: Any, status: str | None
               ) -> frames.RunSelection:
    try:
        return frames.RunSelection(flow, frames.to_epoch(since), frames.to_epoch(until),
                                   status)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def steps(run_id: str | None = None, *, flow: str | None = None, since: Any = None,
          until: Any = None, status: str | None = None,
          db: PathLike | None = None) -> pd.DataFrame:
    """One row per step of a run (the latest run when omitted), in file order.

    ``flow=``, ``since=``, ``until=`` or ``status=`` select many runs instead (the runs of
    that flow, started in ``[since, until)``, with that run status), oldest first; the frame
    then has a ``flow`` column after ``run_id``. ``since``/``until`` take a datetime, a date,
    an ISO 8601 string, epoch seconds, or a timedelta (that long ago)."""
    with _open_store(db) as store:
        frame = frames.steps_frame(store, run_id,
                                   select=_selection(flow, since, until, status))
    for rid in frame["run_id"].unique() if len(frame) else ():
        running = _still_running(str(rid))
        if running:
            frame.loc[(frame["run_id"] == rid) & frame["step"].isin(running),
                      "reason"] = STILL_RUNNING
    return frame


def attempts(run_id: str | None = None, *, flow: str | None = None, since: Any = None,
             until: Any = None, status: str | None = None,
             db: PathLike | None = None) -> pd.DataFrame:
    """One row per attempt of a run (the latest run when omitted), with why each attempt
    that did not succeed ended so (``reason``); selects many runs as ``steps`` does."""
    with _open_store(db) as store:
        return frames.attempts_frame(store, run_id,
                                     select=_selection(flow, since, until, status))


def events(run_id: str | None = None, *, flow: str | None = None, since: Any = None,
           until: Any = None, status: str | None = None,
           db: PathLike | None = None) -> pd.DataFrame:
    """The run's events in order (the latest run when omitted): ``data`` holds each event's
    fields, and the common ones are columns too (``exit_code``, ``reason``, ``delay_s``, ...);
    selects many runs as ``steps`` does."""
    with _open_store(db) as store:
        return frames.events_frame(store, run_id,
                                   select=_selection(flow, since, until, status))


def compare(run_a: str | Run, run_b: str | Run = "last", *,
            db: PathLike | None = None) -> pd.DataFrame:
    """Two runs side by side, one row per step (the steps of ``run_a`` in file order, then
    those only ``run_b`` has): status, duration and attempts in each, and the differences
    ``duration_diff_s`` (b minus a) and ``status_changed``. "Why is today's run slower" is
    the top of ``compare(yesterday, today).sort_values("duration_diff_s")``."""
    a_id = run_a.run_id if isinstance(run_a, Run) else run_a
    b_id = run_b.run_id if isinstance(run_b, Run) else run_b
    if db is None:
        db = run_a.db if isinstance(run_a, Run) else run_b.db if isinstance(run_b, Run) else None
    with _open_store(db) as store:
        a = frames.steps_frame(store, a_id)
        b = frames.steps_frame(store, b_id)
    return frames.compare_frames(a, b)


def show(run_id: str = "last", *, db: PathLike | None = None, timeline: bool = True,
         flow: Flow | None = None) -> RunPicture:
    """Redraw a past run: its graph with final states, its step table and a timeline.

    ``flow`` is the run's flow when the caller has it (the notebook passes a cell's flow,
    which has no file); otherwise it is reloaded from the run's flow file, or, when that is
    gone or changed, made of the step names recorded (a graph without edges).
    """
    from .render.svg import graph_for
    from .render.timeline import run_picture

    store = _open_store(db)
    with contextlib.closing(store):
        rid = store.resolve_run(run_id)
        info = store.run(rid)
        rows = store.step_rows(rid)
        attempt_rows = store.attempts(rid) if timeline else None
    if flow is None:
        flow = recorded_flow(info)
    return run_picture(flow, info, rows, attempt_rows, graph_for(rid, flow))


def recorded_flow(info: Mapping[str, Any]) -> Flow:
    """The flow of a recorded run, from the run as ``Store.run`` gives it (``flow``,
    ``source``, ``params``, ``steps``): its flow file loaded again with the run's params, or,
    when the file is gone or no longer loads, a flow of its recorded step names (no edges).

    The one rebuild every picture of a past run uses: ``show()`` and ``chronum serve``. Only a
    file Chronum's own YAML/JSON parser reads is loaded: a ``.py`` flow (or a plugin's format)
    runs code, and a picture must not run what a database from someone else names."""
    from .spec import default_parsers

    source = info.get("source")
    fmt = default_parsers.format_for(source) if source else None
    if source and fmt in ("yaml", "json") and default_parsers.is_builtin(fmt) and \
            os.path.exists(source):
        try:
            return load(source, params=info.get("params") or None)
        except Exception:
            pass  # the file changed since: fall back to the recorded steps
    return Flow(name=info["flow"], steps=tuple(Step(name=row["step"]) for row in info["steps"]))


def show_logs(ref: str, step: str | None = None, *, db: PathLike | None = None,
              out: IO[str] | None = None, err: IO[str] | None = None) -> None:
    """Print the log of a run's ``step``, or of every step under a ``==> step <==`` header.

    ``chronum logs`` and ``%chronum logs`` both print through here.
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    with _open_store(db) as store:
        run_id = store.resolve_run(ref)
        names = [row["step"] for row in store.steps(run_id)]
        if step is not None and step not in names:
            close = difflib.get_close_matches(step, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UsageError(f"run {run_id} has no step {step!r}{hint}")
        for name in [step] if step is not None else names:
            path = store.log_path(run_id, name)
            if step is None:
                out.write(f"==> {name} <==\n")
            if path is None or not path.exists():
                if step is not None:
                    err.write(f"(step {name} wrote no log)\n")
                continue
            with open(path, encoding="utf-8", errors="replace") as fh:
                while chunk := fh.read(1 << 16):
                    out.write(chunk)
            out.flush()
