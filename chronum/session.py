"""One run, assembled: the store, the bus and its subscribers, the executors and the engine.

Every front end starts a run here (``chronum.run``, the CLI, a notebook cell, the SDK), from a
``chronum.model.Flow``, typed ``RunOptions`` and, when the run continues another, a
``ReusePlan``. ``prepare_resume`` makes that plan from what the store recorded, so resuming
works the same from every front end.

What a run needs beyond its flow and options lives here too, each bounded per process:

- the step functions of flows built by the SDK in this process (``register_functions``): a
  model flow only names ``call: module:function``, and a function defined in a notebook cannot
  be imported by that name;
- the values of recent runs (``RECENT_VALUES``), so a resume in the same process keeps values
  that were never written to disk (``persist: true`` writes them, for other processes).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ._lru import LRU
from .engine import ReusePlan, run_flow
from .engine.plan import plan_resume
from .errors import ChronumError, UsageError
from .eventbus import EventBus, Subscriber
from .executors import ExecutorRegistry
from .model import Flow
from .spec import load
from .store import Store, resolve_db_path
from .store.values import MISSING, keeper, load_value, values_dir
from .store.writer import JsonLinesWriter, StoreWriter

__all__ = [
    "RECENT_VALUES",
    "Finished",
    "Resumption",
    "RunOptions",
    "functions_for",
    "new_run_id",
    "prepare_resume",
    "register_functions",
    "start",
    "with_params",
]

PathLike = str | os.PathLike[str]
Functions = Mapping[str, Callable[..., Any]]

#: Values returned by python steps of recent runs in this process, by run id.
RECENT_VALUES: LRU[str, dict[str, Any]] = LRU(32)
#: Step functions of flows built in this process, by (flow name, source file).
_FUNCTIONS: LRU[tuple[str, str | None], tuple[Flow, Functions]] = LRU(64)


def register_functions(flow: Flow, functions: Functions) -> None:
    """The functions behind ``flow``'s python steps (the SDK calls this when it builds)."""
    _FUNCTIONS[(flow.name, flow.source)] = (flow, functions)


def functions_for(flow: Flow) -> Functions | None:
    """The functions of ``flow``'s python steps, if it (or an equal flow) was built here."""
    entry = _FUNCTIONS.lookup((flow.name, flow.source))
    if entry is None:
        return None
    known, functions = entry
    return functions if known is flow or known.steps == flow.steps else None


def new_run_id() -> str:
    """12 hex digits: short enough to type a prefix, random enough for one machine's history."""
    return os.urandom(6).hex()


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """How to run a flow; every field left None takes the flow's own setting or the default."""

    #: Values for the flow's declared params (``-p name=value``).
    params: Mapping[str, str] | None = None
    max_parallel: int | None = None
    stop_on_fail: bool | None = None
    #: The SQLite file (default: ``$CHRONUM_DB`` or ``.chronum/chronum.db``).
    db: PathLike | None = None
    #: Append every event as a JSON line to this file.
    events_jsonl: PathLike | None = None
    subscribers: tuple[Subscriber, ...] = ()
    executors: ExecutorRegistry | None = None
    run_id: str | None = None
    #: Seconds between SIGTERM and SIGKILL when a step is stopped (default:
    #: ``$CHRONUM_KILL_GRACE`` or 5).
    grace: float | None = None
    #: Where ``call: name`` finds functions without a module (a notebook's namespace).
    namespace: Mapping[str, Any] | None = None
    #: Where a flow without a file came from (a notebook cell's text), kept with the run.
    origin: Mapping[str, str] | None = None
    #: The step functions of a flow built in Python; found by flow when None.
    functions: Functions | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.max_parallel is not None and self.max_parallel < 1:
            raise UsageError(f"max_parallel must be at least 1, got {self.max_parallel}")
        if self.grace is not None and self.grace < 0:
            raise UsageError(f"grace must not be negative, got {self.grace:g}")


@dataclass(frozen=True, slots=True)
class Finished:
    """How a session ended: what ``chronum.Run`` is made of."""

    run_id: str
    flow: Flow
    status: str
    outputs: Mapping[str, Any]
    errors: Mapping[str, str]
    started_at: float
    finished_at: float
    db: Path


def with_params(flow: Flow, params: Mapping[str, str] | None) -> Flow:
    """``flow`` with some of its declared params given new values."""
    if not params:
        return flow
    unknown = sorted(set(params) - set(flow.params))
    if unknown:
        declared = ", ".join(sorted(flow.params)) or "none"
        raise UsageError(f"unknown parameter {unknown[0]!r}; the flow declares: {declared}")
    return replace(flow, params={**flow.params, **params})


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


async def start(flow: Flow, options: RunOptions, plan: ReusePlan | None = None) -> Finished:
    """Run ``flow`` on the running event loop and record it; never raises for a failed run.

    Cancelling the awaiting task cancels the run cleanly: its steps are stopped and it is
    recorded ``cancelled``.
    """
    flow = with_params(flow, options.params)
    run_id = options.run_id or new_run_id()
    grace = options.grace if options.grace is not None else _grace_from_env()
    functions = options.functions if options.functions is not None else functions_for(flow)
    extras: dict[str, Any] = {}
    if options.namespace is not None:
        extras["namespace"] = options.namespace
    if functions:
        extras["functions"] = functions
    plan = plan or ReusePlan()

    store = Store(resolve_db_path(options.db))
    bus = EventBus()
    writer = StoreWriter(store)
    jsonl = JsonLinesWriter(options.events_jsonl) if options.events_jsonl is not None else None
    try:
        store.begin_run(run_id, flow, parent_run_id=plan.parent_run_id, params=flow.params,
                        origin=options.origin)
        bus.subscribe(writer, critical=True)
        if jsonl is not None:
            bus.subscribe(jsonl)
        for subscriber in options.subscribers:
            bus.subscribe(subscriber)
        on_output = None
        if any(s.options for s in flow.steps):
            on_output = keeper(flow, store.path, run_id)
        outcome = await run_flow(
            flow, run_id=run_id, bus=bus, executors=options.executors, params=flow.params,
            max_parallel=options.max_parallel, stop_on_fail=options.stop_on_fail, plan=plan,
            grace=grace, extras=extras, on_output=on_output, durable=writer.barrier,
        )
    finally:
        try:
            writer.close()
            if plan.reasons:
                store.note_reasons(run_id, plan.reasons)
        finally:
            if jsonl is not None:
                jsonl.close()
            store.close()
    RECENT_VALUES[run_id] = outcome.outputs
    return Finished(run_id, flow, outcome.status, outcome.outputs, outcome.errors,
                    outcome.started_at, outcome.finished_at, store.path)


# -- resuming ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resumption:
    """A run about to be resumed: the stored run, the flow to run, and what it keeps."""

    run_id: str
    info: Mapping[str, Any]
    flow: Flow
    plan: ReusePlan

    @property
    def params(self) -> Mapping[str, str]:
        """The params the resumed run had (a resume runs with the same values)."""
        return self.info.get("params") or {}

    @property
    def origin(self) -> Mapping[str, str] | None:
        return self.info.get("origin")


#: ``choose(run_id, info)``: the flow to resume with, or None for the run's flow file.
FlowChooser = Callable[[str, Mapping[str, Any]], Flow | None]


def _value_lookup(db_path: Path) -> Callable[[str, str], Any]:
    def value_of(run_id: str, step: str) -> Any:
        recent = RECENT_VALUES.get(run_id)
        if recent is not None:  # made in this process: no entry means it returned None
            return recent.get(step)
        folder = values_dir(db_path, run_id)
        value = load_value(folder, step) if folder is not None else MISSING
        if value is MISSING:
            raise KeyError(step)
        return value

    return value_of


def _flow_file(run_id: str, info: Mapping[str, Any]) -> Flow:
    if (info.get("origin") or {}).get("kind") == "cell":
        raise UsageError(
            f"run {run_id} came from a notebook cell; resume it in a notebook: "
            f"`%load_ext chronum`, define the cell's functions, then `%chronum resume {run_id}`"
        )
    source = info.get("source")
    if not source or not Path(source).exists():
        raise ChronumError(
            f"run {run_id} cannot be resumed: its flow file {source or '(none)'} is gone")
    return load(source, params=info.get("params") or None)


def prepare_resume(ref: str, *, db: PathLike | None = None, choose: FlowChooser | None = None,
                   functions: Functions | None = None) -> Resumption:
    """What resuming run ``ref`` (an id, a unique prefix, or ``last``) runs and keeps.

    The flow is ``choose(run_id, info)`` when that gives one (the SDK's flow object, a
    notebook cell's flow), else the run's flow file, reloaded with the run's params.
    """
    path = resolve_db_path(db)
    with Store(path) as store:
        run_id = store.resolve_run(ref)
        info = store.run(run_id)
        rows = store.step_rows(run_id)
    if info["status"] == "running":
        raise UsageError(f"run {run_id} is still running; wait for it or stop it first")
    flow = choose(run_id, info) if choose is not None else None
    if flow is None:
        flow = _flow_file(run_id, info)
    if functions is None:
        functions = functions_for(flow)
    plan = plan_resume(flow, rows, run_id, value_of=_value_lookup(path), functions=functions)
    return Resumption(run_id, info, flow, plan)
