"""The public API: load, run, resume, and the history as DataFrames.

Everything here is a thin layer over ``spec`` (loading), ``engine`` (running), ``store``
(recording) and the event bus that joins them. Front ends (CLI, notebook) use only this.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import dag
from .errors import ChronumError, RunFailedError, UsageError
from .eventbus import Event, EventBus
from .executors import ExecutorRegistry
from .model import Flow

if TYPE_CHECKING:
    import pandas as pd

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
    "steps",
]

PathLike = str | os.PathLike[str]

#: Values returned by python steps of recent runs in this process, so a resume in the same
#: process keeps them (``persist: true`` for keeping them across processes comes later).
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
        return resume(self.run_id, db=self.db, **options)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """Rich display in Jupyter; the notebook package decides what a run looks like."""
        from .notebook.display import run_mimebundle

        return run_mimebundle(self, include, exclude)

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


async def arun(
    flow: Flow | PathLike,
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
) -> Run:
    """Run a flow on the running event loop and record it; never raises for a failed run.

    ``flow`` is a ``Flow`` or a path to a flow file. Cancelling the awaiting task cancels the
    run cleanly: its steps are stopped and it is recorded ``cancelled``.
    """
    from .engine import run_flow

    if not isinstance(flow, Flow):
        flow = load(flow, params=params)
    elif params:
        flow = _with_params(flow, params)
    if max_parallel is not None and max_parallel < 1:
        raise UsageError(f"max_parallel must be at least 1, got {max_parallel}")
    run_id = run_id or new_run_id()
    if grace is None:
        grace = _grace_from_env()
    store = _open_store(db)
    bus = EventBus()
    writer = _StoreWriter(store)
    jsonl = _JsonLines(events_jsonl) if events_jsonl is not None else None
    try:
        store.begin_run(run_id, flow, parent_run_id=_parent_run_id, params=flow.params)
        bus.subscribe(writer, critical=True)
        if jsonl is not None:
            bus.subscribe(jsonl)
        for subscriber in subscribers:
            bus.subscribe(subscriber)
        cached_outputs = _RECENT_OUTPUTS.get(_parent_run_id or "", {})
        extras = {"namespace": namespace} if namespace is not None else {}
        outcome = await run_flow(
            flow, run_id=run_id, bus=bus, executors=executors, params=flow.params,
            max_parallel=max_parallel, stop_on_fail=stop_on_fail, cached=_cached,
            cached_outputs=_collect_cached_outputs(_cached, cached_outputs),
            parent_run_id=_parent_run_id, grace=grace, extras=extras,
        )
    finally:
        try:
            writer.close()
        finally:
            if jsonl is not None:
                jsonl.close()
            store.close()
    _remember(run_id, outcome.outputs)
    return Run(run_id, flow, outcome.status, outcome.outputs, Path(store.path),
               outcome.errors, outcome.started_at, outcome.finished_at)


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


def _collect_cached_outputs(cached: Mapping[str, str] | None,
                            parent_outputs: Mapping[str, Any]) -> dict[str, Any]:
    if not cached:
        return {}
    out: dict[str, Any] = {}
    for name, from_run in cached.items():
        source = parent_outputs if name in parent_outputs else _RECENT_OUTPUTS.get(from_run, {})
        if name in source:
            out[name] = source[name]
    return out


def _with_params(flow: Flow, params: Mapping[str, str]) -> Flow:
    from dataclasses import replace

    unknown = sorted(set(params) - set(flow.params))
    if unknown:
        declared = ", ".join(sorted(flow.params)) or "none"
        raise UsageError(f"unknown parameter {unknown[0]!r}; the flow declares: {declared}")
    return replace(flow, params={**flow.params, **params})


def _in_running_loop() -> bool:
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
    return asyncio.run(coro_fn(*args, **kwargs))


def run(flow: Flow | PathLike, **options: Any) -> Run:
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


async def aresume(ref: str, *, db: PathLike | None = None, **options: Any) -> Run:
    """Run again what did not succeed in run ``ref`` (an id, a unique prefix, or ``last``)."""
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
    if not source or not Path(source).exists():
        raise ChronumError(
            f"run {run_id} cannot be resumed: its flow file {source or '(none)'} is gone"
        )
    flow = load(source, params=info.get("params") or None)
    kept = plan_resume(flow, rows, run_id)
    return await arun(flow, db=db, _cached=kept, _parent_run_id=run_id, **options)


def resume(ref: str, *, db: PathLike | None = None, **options: Any) -> Run:
    """Blocking ``aresume``."""
    result: Run = _sync("resume", aresume, ref, db=db, **options)
    return result


def _frame(kind: str, db: PathLike | None, *args: Any) -> pd.DataFrame:
    from .store import frames

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


def _resolve(run_id: str | None, db: PathLike | None) -> str | None:
    if run_id is None:
        return None
    store = _open_store(db)
    with contextlib.closing(store):
        return store.resolve_run(run_id)
