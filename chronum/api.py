"""The public API: load, run, resume, and the history as DataFrames.

Everything here is a thin layer over ``spec`` (loading), ``engine`` (running), ``store``
(recording) and the event bus that joins them. Front ends (CLI, notebook) use only this.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import dag
from .errors import ChronumError, RunFailedError, UsageError
from .eventbus import Event, EventBus
from .executors import ExecutorRegistry
from .model import Flow, Step

if TYPE_CHECKING:
    import asyncio

    import pandas as pd

    from .render.dot import Graph
    from .render.timeline import RunPicture
    from .sdk import Flow as FlowDefinition
    from .store import Store

__all__ = [
    "Run",
    "aresume",
    "arun",
    "attempts",
    "events",
    "history",
    "load",
    "new_run_id",
    "resume",
    "run",
    "show",
    "steps",
]

PathLike = str | os.PathLike[str]

#: Values returned by python steps of recent runs in this process, so a resume in the same
#: process keeps them (``persist: true`` keeps them on disk, for other processes).
_RECENT_OUTPUTS: dict[str, dict[str, Any]] = {}
_RECENT_LIMIT = 32


def new_run_id() -> str:
    """12 hex digits: short enough to type a prefix, random enough for one machine's history."""
    return os.urandom(6).hex()


def load(path: PathLike, *, params: Mapping[str, str] | None = None) -> Flow:
    """Load and validate a flow file; raises ``SpecError`` listing every problem."""
    from .spec import load as spec_load

    return spec_load(path, params=params)


def _open_store(db: PathLike | None) -> Store:
    from .store import Store, resolve_db_path

    return Store(resolve_db_path(db))


class Run:
    """A finished (or, while it runs, a running) run: its id, status and python outputs."""

    def __init__(self, run_id: str, flow: Flow, status: str, outputs: Mapping[str, Any],
                 db: Path, errors: Mapping[str, str] | None = None,
                 started_at: float = 0.0, finished_at: float | None = None) -> None:
        self.run_id = run_id
        self.flow = flow
        self.status = status
        self.outputs = dict(outputs)
        self.errors = dict(errors or {})
        self.db = db
        self.started_at = started_at
        self.finished_at = finished_at
        #: The ``chronum.Flow`` (SDK) this run came from, if any: resume rebuilds it.
        self.definition: FlowDefinition | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

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

    def resume(self, **options: Any) -> Run:
        if self.definition is not None:
            options.setdefault("_flow", self.definition)
        return resume(self.run_id, db=self.db, **options)

    async def aresume(self, **options: Any) -> Run:
        if self.definition is not None:
            options.setdefault("_flow", self.definition)
        return await aresume(self.run_id, db=self.db, **options)

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


class _StoreWriter:
    """The store's bus subscriber: writes are buffered and committed within ~50 ms.

    Committing per event would cost more than the steps themselves on a 1,000-step flow; a
    short delay keeps the store at most a few ticks behind. A write error is raised on the next
    event, from the engine's own stack, so the run fails instead of going on unrecorded.
    """

    def __init__(self, store: Store, interval: float = 0.05) -> None:
        self.store = store
        self.interval = interval
        self.error: BaseException | None = None
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, event: Event) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        self.store.record(event)
        if self._timer is None:
            import asyncio  # not at module level: the DataFrame functions never need it

            self._timer = asyncio.get_running_loop().call_later(self.interval, self._flush)

    def _flush(self) -> None:
        self._timer = None
        try:
            self.store.flush()
        except Exception as exc:
            self.error = exc

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.store.flush()


class _JsonLines:
    """``--events-jsonl``: every event, log lines included, as one JSON object per line."""

    def __init__(self, path: PathLike) -> None:
        self.file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close)

    def __call__(self, event: Event) -> None:
        self.file.write(json.dumps(event.to_dict(), default=str) + "\n")

    def close(self) -> None:
        self.file.close()


def _remember(run_id: str, outputs: dict[str, Any]) -> None:
    _RECENT_OUTPUTS[run_id] = outputs
    while len(_RECENT_OUTPUTS) > _RECENT_LIMIT:
        del _RECENT_OUTPUTS[next(iter(_RECENT_OUTPUTS))]


def _definition(flow: object) -> FlowDefinition | None:
    """``flow`` if it is a ``chronum.Flow`` of the SDK (only possible once it is imported)."""
    sdk = sys.modules.get("chronum.sdk._flow")
    return flow if sdk is not None and isinstance(flow, sdk.Flow) else None


def _functions_of(flow: Flow) -> Mapping[str, Callable[..., Any]] | None:
    """The step functions of a flow built by the SDK in this process."""
    registry = sys.modules.get("chronum.sdk._registry")
    found: Mapping[str, Callable[..., Any]] | None = (
        None if registry is None else registry.functions_for(flow))
    return found


async def arun(
    flow: Flow | FlowDefinition | PathLike,
    *,
    params: Mapping[str, str] | None = None,
    max_parallel: int | None = None,
    stop_on_fail: bool | None = None,
    db: PathLike | None = None,
    events_jsonl: PathLike | None = None,
    subscribers: Iterable[Callable[[Event], None]] = (),
    executors: ExecutorRegistry | None = None,
    run_id: str | None = None,
    grace: float | None = None,
    namespace: Mapping[str, Any] | None = None,
    _cached: Mapping[str, str] | None = None,
    _parent_run_id: str | None = None,
    _origin: Mapping[str, str] | None = None,
) -> Run:
    """Run a flow on the running event loop and record it; never raises for a failed run.

    ``flow`` is a ``Flow`` (a ``chronum.model.Flow`` or a ``chronum.Flow`` of the SDK) or a
    path to a flow file. Cancelling the awaiting task cancels the run cleanly: its steps are
    stopped and it is recorded ``cancelled``.
    """
    from .engine import run_flow

    definition = _definition(flow)
    functions: Mapping[str, Callable[..., Any]] | None = None
    if definition is not None:
        flow, functions = definition._compile()
        if params:
            flow = _with_params(flow, params)
    elif not isinstance(flow, Flow):
        flow = load(flow, params=params)  # type: ignore[arg-type]  # SDK flows are handled above
    elif params:
        flow = _with_params(flow, params)
    if max_parallel is not None and max_parallel < 1:
        raise UsageError(f"max_parallel must be at least 1, got {max_parallel}")
    run_id = run_id or new_run_id()
    reasons: Mapping[str, str] = {}
    if grace is None:
        grace = _grace_from_env()
    store = _open_store(db)
    bus = EventBus()
    writer = _StoreWriter(store)
    jsonl = _JsonLines(events_jsonl) if events_jsonl is not None else None
    try:
        store.begin_run(run_id, flow, parent_run_id=_parent_run_id, params=flow.params,
                        origin=_origin)
        bus.subscribe(writer, critical=True)
        if jsonl is not None:
            bus.subscribe(jsonl)
        for subscriber in subscribers:
            bus.subscribe(subscriber)
        if functions is None:
            functions = _functions_of(flow)
        extras: dict[str, Any] = {"namespace": namespace} if namespace is not None else {}
        if functions:
            extras["functions"] = functions
        on_output = None
        if any(s.options for s in flow.steps):
            from .sdk._values import keeper

            on_output = keeper(flow, Path(store.path), run_id)
        cached_values: dict[str, Any] = {}
        if _cached:
            from .sdk._values import restore

            restored = restore(flow, _cached, _RECENT_OUTPUTS, Path(store.path), functions)
            _cached, reasons = restored.cached, restored.reasons
            cached_values = {k: v for k, v in restored.values.items() if v is not None}
        outcome = await run_flow(
            flow, run_id=run_id, bus=bus, executors=executors, params=flow.params,
            max_parallel=max_parallel, stop_on_fail=stop_on_fail, cached=_cached,
            cached_outputs=cached_values, parent_run_id=_parent_run_id, grace=grace,
            extras=extras, on_output=on_output,
        )
    finally:
        try:
            writer.close()
            if reasons:
                store.note_reasons(run_id, reasons)
        finally:
            if jsonl is not None:
                jsonl.close()
            store.close()
    _remember(run_id, outcome.outputs)
    run = Run(run_id, flow, outcome.status, outcome.outputs, Path(store.path),
              outcome.errors, outcome.started_at, outcome.finished_at)
    run.definition = definition
    return run


def _grace_from_env() -> float:
    """``CHRONUM_KILL_GRACE``: seconds between SIGTERM and SIGKILL when a step is stopped."""
    text = os.environ.get("CHRONUM_KILL_GRACE", "")
    if not text:
        return 5.0
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"CHRONUM_KILL_GRACE must be a number of seconds, got {text!r}") from None
    if value < 0:
        raise UsageError(f"CHRONUM_KILL_GRACE must not be negative, got {value:g}")
    return value


def _with_params(flow: Flow, params: Mapping[str, str]) -> Flow:
    from dataclasses import replace

    unknown = sorted(set(params) - set(flow.params))
    if unknown:
        declared = ", ".join(sorted(flow.params)) or "none"
        raise UsageError(f"unknown parameter {unknown[0]!r}; the flow declares: {declared}")
    return replace(flow, params={**flow.params, **params})


def _in_running_loop() -> bool:
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:  # no loop runs without it: nothing to import to know that
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _sync(name: str, coro_fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if _in_running_loop():
        raise UsageError(
            f"chronum.{name}() was called inside a running event loop (a notebook cell?); "
            f"use `await chronum.a{name}(...)` there"
        )
    import asyncio

    return asyncio.run(coro_fn(*args, **kwargs))


def run(flow: Flow | FlowDefinition | PathLike, **options: Any) -> Run:
    """Run a flow to the end (blocking); see ``arun`` for the options."""
    result: Run = _sync("run", arun, flow, **options)
    return result


def plan_resume(flow: Flow, rows: Iterable[Mapping[str, Any]], run_id: str) -> dict[str, str]:
    """Steps to keep when resuming ``run_id``: those that succeeded (or were kept) and have
    nothing that will run again upstream. Maps each kept step to the run that produced it."""
    kept: dict[str, str] = {}
    rows_by_step = {r["step"]: r for r in rows}
    for step in flow.steps:
        row = rows_by_step.get(step.name)
        if row is not None and row["status"] in ("succeeded", "cached"):
            kept[step.name] = row.get("cached_from") or run_id
    rerun = set(flow.step_names) - set(kept)
    for name in dag.downstream(flow, rerun):
        kept.pop(name, None)
    return kept


async def aresume(ref: str, *, db: PathLike | None = None,
                  _flow: Flow | FlowDefinition | None = None, **options: Any) -> Run:
    """Run again what did not succeed in run ``ref`` (an id, a unique prefix, or ``last``).

    The flow is reloaded from its file; ``Run.resume`` of a ``chronum.Flow`` run passes the
    flow object instead (``_flow``), as it is now in this process."""
    store = _open_store(db)
    try:
        run_id = store.resolve_run(ref)
        info = store.run(run_id)
        rows = store.step_rows(run_id)
    finally:
        store.close()
    if info["status"] == "running":
        raise UsageError(f"run {run_id} is still running; wait for it or stop it first")
    source = info.get("source")
    definition = _definition(_flow)
    if definition is not None:
        flow = definition.build()
        if info.get("params"):
            flow = _with_params(flow, info["params"])
    elif isinstance(_flow, Flow):
        flow = _flow
    elif (info.get("origin") or {}).get("kind") == "cell":
        raise UsageError(
            f"run {run_id} came from a notebook cell; resume it in a notebook: "
            f"`%load_ext chronum`, define the cell's functions, then `%chronum resume {run_id}`"
        )
    elif not source or not Path(source).exists():
        raise ChronumError(
            f"run {run_id} cannot be resumed: its flow file {source or '(none)'} is gone"
        )
    else:
        flow = load(source, params=info.get("params") or None)
    kept = plan_resume(flow, rows, run_id)
    if definition is not None:
        run = await arun(definition, db=db, _cached=kept, _parent_run_id=run_id,
                         params=info.get("params") or None, **options)
    else:
        run = await arun(flow, db=db, _cached=kept, _parent_run_id=run_id, **options)
    return run


def resume(ref: str, *, db: PathLike | None = None, **options: Any) -> Run:
    """Blocking ``aresume``."""
    result: Run = _sync("resume", aresume, ref, db=db, **options)
    return result


def _frame(kind: str, db: PathLike | None, *args: Any) -> pd.DataFrame:
    """A DataFrame view, with the cycle collector paused: importing pandas (the first call)
    and turning 100,000 rows into columns allocate in bursts that make no garbage cycles, and
    each collection they trigger scans every object of the process (here 20 % of the pandas
    import and 60 % of turning 100,000 rows into columns)."""
    from ._gc import paused
    from .store import frames

    with paused():
        store = _open_store(db)
        try:
            func = getattr(frames, f"{kind}_frame")
            frame: pd.DataFrame = func(store, *args)
            return frame
        finally:
            store.close()


def history(limit: int | None = None, *, db: PathLike | None = None) -> pd.DataFrame:
    """One row per run, newest first."""
    return _frame("history", db, limit)


def steps(run_id: str | None = None, *, db: PathLike | None = None) -> pd.DataFrame:
    """One row per step of a run (the latest run when omitted), in file order."""
    return _frame("steps", db, _resolve(run_id, db))


def attempts(run_id: str | None = None, *, db: PathLike | None = None) -> pd.DataFrame:
    """One row per attempt of a run (the latest run when omitted)."""
    return _frame("attempts", db, _resolve(run_id, db))


def events(run_id: str | None = None, *, db: PathLike | None = None) -> pd.DataFrame:
    """The run's events in order (the latest run when omitted)."""
    return _frame("events", db, _resolve(run_id or "last", db))


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
        flow = _recorded_flow(info)
    return run_picture(flow, info, rows, attempt_rows, graph_for(rid, flow))


def _recorded_flow(info: Mapping[str, Any]) -> Flow:
    """A past run's flow: from its file, or (no edges) from its recorded step names."""
    source = info.get("source")
    if source and os.path.exists(source):
        try:
            return load(source, params=info.get("params") or None)
        except Exception:
            pass  # the file changed since: fall back to the recorded steps
    return Flow(name=info["flow"], steps=tuple(Step(name=row["step"]) for row in info["steps"]))


def _resolve(run_id: str | None, db: PathLike | None) -> str | None:
    if run_id is None:
        return None
    store = _open_store(db)
    with contextlib.closing(store):
        return store.resolve_run(run_id)
