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

import asyncio
import contextlib
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import subscribers as named_subscribers
from ._lru import LRU
from .engine import ReusePlan, run_flow
from .engine.cache import (
    cache_enabled,
    caching_in_play,
    output_digests,
    step_keys,
)
from .engine.masking import MASK, Masker, read_secrets
from .engine.plan import edited_since, plan_resume, plan_run
from .engine.stop import until_requested
from .errors import ChronumError, UsageError
from .eventbus import EventBus, RunFinished, StepCancelled, StepSkipped, Subscriber
from .executors import ExecutorRegistry, capture
from .executors.base import process_start
from .model import Flow
from .spec import load
from .spec._build import MAX_PARALLEL
from .store import Store, resolve_db_path
from .store import keys as cache_rows
from .store.cancel import is_requested
from .store.core import flow_identity
from .store.liveness import host_name
from .store.logs import relative_log_path
from .store.values import MISSING, keeper, load_value, values_dir
from .store.writer import JsonLinesWriter, StoreWriter

__all__ = [
    "RECENT_VALUES",
    "Finished",
    "Leftover",
    "Resumption",
    "RunOptions",
    "active_runs",
    "cancel_run",
    "ended_runs",
    "find_leftovers",
    "functions_for",
    "new_run_id",
    "prepare_resume",
    "register_functions",
    "start",
    "with_params",
]

logger = logging.getLogger("chronum")

PathLike = str | os.PathLike[str]
Functions = Mapping[str, Callable[..., Any]]

#: Values returned by python steps of recent runs in this process, by run id.
RECENT_VALUES: LRU[str, dict[str, Any]] = LRU(32)
#: Step functions of flows built in this process, by (flow name, source file).
_FUNCTIONS: LRU[tuple[str, str | None], tuple[Flow, Functions]] = LRU(64)


#: The task of every run going on in this process, by run id: what a front end that ends
#: (a notebook kernel shutting down) cancels, so that no step outlives it unrecorded.
_ACTIVE: dict[str, asyncio.Task[Any]] = {}


#: Runs of this process that ended lately: run id -> (``time.monotonic()`` at its end, store).
_ENDED: LRU[str, tuple[float, Path]] = LRU(16)


def ended_runs(since: float) -> list[tuple[str, Path]]:
    """The runs of this process that ended at ``time.monotonic()`` ``since`` or later, with
    their stores."""
    return [(rid, db) for rid, (at, db) in list(_ENDED.items()) if at >= since]


def active_runs() -> dict[str, asyncio.Task[Any]]:
    """The runs going on in this process now: run id -> the task awaiting its engine
    (cancelling it stops the run's steps and records the run ``cancelled``)."""
    return dict(_ACTIVE)


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
    #: A resume only: run it even though an earlier resume of the same run succeeded.
    again: bool = False
    #: True: cache every step without its own ``cache:`` (``--cache``, ``Flow(cache=True)``);
    #: False: reuse nothing, still record keys (``--no-cache``); None: the flow's setting.
    cache: bool | None = None
    #: ``--from STEP``: run STEP and its downstream, reuse the latest results upstream.
    from_step: str | None = None
    #: ``--only STEP...``: run just these steps, reusing the latest results they need.
    only: tuple[str, ...] = ()
    #: Subscribers to load by name (``chronum.subscribers`` entry points), beside those of
    #: ``$CHRONUM_SUBSCRIBERS``.
    subscriber_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_parallel is not None and not 1 <= self.max_parallel <= MAX_PARALLEL:
            raise UsageError(f"max_parallel must be between 1 and {MAX_PARALLEL:,}, "
                             f"got {self.max_parallel}")
        if self.grace is not None:
            _check_grace("grace", self.grace)


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


#: The longest grace: a stopped step is killed within it, so ``inf`` must not mean never.
MAX_GRACE = 3600.0


def _check_grace(what: str, value: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise UsageError(f"{what} must be a number of seconds, got {value!r}")
    if not (math.isfinite(value) and 0 <= value <= MAX_GRACE):
        raise UsageError(f"{what} must be between 0 and {MAX_GRACE:g} seconds, got {value:g}")
    return float(value)


def _grace_from_env() -> float:
    """``CHRONUM_KILL_GRACE``: seconds between SIGTERM and SIGKILL when a step is stopped."""
    text = os.environ.get("CHRONUM_KILL_GRACE", "").strip()
    if not text:
        return 5.0
    try:
        value = float(text)
    except ValueError:
        raise UsageError(
            f"CHRONUM_KILL_GRACE must be a number of seconds, got {text[:40]!r}") from None
    return _check_grace("CHRONUM_KILL_GRACE", value)


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
    _warn_still_running(flow)
    from .executors.python import refresh_modules

    refresh_modules((s.call for s in flow.steps if s.call), flow.base_dir)
    # What the store keeps passes the masker too (the engine masks what it emits): a secret
    # given as ``-p token=...`` or written into a cell's text is stored as ``***``.
    mask = Masker(read_secrets(flow, os.environ).values())
    loaded = named_subscribers.load(named_subscribers.names(options.subscriber_names))

    store = Store(resolve_db_path(options.db))
    try:  # whatever fails before the run starts, the store's connection is closed
        if not plan.kept and not plan.keys and plan.parent_run_id is None and (
                options.from_step or options.only or caching_in_play(flow, options.cache)):
            plan = _cache_plan(store, flow, options, functions)
        if mask and plan.reasons:  # "param p changed (old → new)" may quote a secret
            plan = replace(plan, reasons=_masked(plan.reasons, mask) or {})
        writer = StoreWriter(store)
        jsonl = (JsonLinesWriter(options.events_jsonl)
                 if options.events_jsonl is not None else None)
    except BaseException:
        store.close()
        named_subscribers.close(loaded)
        raise
    bus = EventBus()
    outcome_states: list[Mapping[str, str]] = []
    outcome_values: dict[str, Any] = {}
    try:
        store.begin_run(run_id, flow, parent_run_id=plan.parent_run_id,
                        params={k: mask(v) for k, v in flow.params.items()},
                        origin=_masked(options.origin, mask), again=options.again)
        if plan.parent_run_id is not None:  # the run is ours now: stop what it left running
            await asyncio.to_thread(_stop_leftovers_of, store, plan.parent_run_id, grace)
        bus.subscribe(writer, critical=True)
        if jsonl is not None:
            bus.subscribe(jsonl)
        for subscriber in (*options.subscribers, *loaded):
            bus.subscribe(subscriber)
        on_output = None
        cached_calls = frozenset(s.name for s in flow.steps
                                 if s.call and plan.keys and cache_enabled(flow, s, options.cache))
        if cached_calls or any(s.options for s in flow.steps):
            on_output = keeper(flow, store.path, run_id, also=cached_calls)
        run_log = _RunLog(store.log_root / relative_log_path(run_id, RUN_LOG))
        # In-process steps share fds 1 and 2 with the runner: capture them for the run.
        end_capture = capture.begin(mask, run_log) if any(s.call for s in flow.steps) else None
        task = asyncio.current_task()
        if task is not None:
            _ACTIVE[run_id] = task
        try:
            outcome = await until_requested(run_flow(
                flow, run_id=run_id, bus=bus, executors=options.executors, params=flow.params,
                max_parallel=options.max_parallel, stop_on_fail=options.stop_on_fail,
                plan=plan, grace=grace, extras=extras, on_output=on_output,
                durable=writer.barrier,
            ), lambda: is_requested(store, run_id), run_id=run_id)
            outcome_states.append(outcome.states)
            outcome_values.update(outcome.outputs)
        finally:
            _ACTIVE.pop(run_id, None)
            _ENDED[run_id] = (time.monotonic(), store.path)
            try:
                if end_capture is not None:
                    end_capture()
            finally:
                run_log.close()
    finally:
        try:
            writer.close()
            if plan.reasons and plan.parent_run_id is not None:
                # a resume's reasons (a step that started has its own, from its event)
                store.note_reasons(run_id, _masked(plan.reasons, mask) or {})
            if plan.keys and outcome_states:
                _record_cache(store, flow, run_id, plan, outcome_states[0], options, functions,
                              mask, cached_calls, outcome_values)
        finally:
            if jsonl is not None:
                jsonl.close()
            named_subscribers.close(loaded)
            store.close()
    RECENT_VALUES[run_id] = outcome.outputs
    return Finished(run_id, flow, outcome.status, outcome.outputs, outcome.errors,
                    outcome.started_at, outcome.finished_at, store.path)


def _warn_still_running(flow: Flow) -> None:
    """A cancelled call of an earlier run of this flow whose thread still runs here may
    still write what this run reads or writes: say so."""
    from .executors.python import still_running_in_flow

    left = still_running_in_flow(flow.name)
    if left:
        named = ", ".join(f"step '{step}' of run {rid}" for rid, step in left[:5])
        logger.warning("flow %s: %s cancelled but still running in the background in this "
                       "process (Python cannot stop a thread); it may still write what this "
                       "run uses", flow.name, named)


#: The name of the run's own log (beside its steps' logs): output of in-process code that
#: could not be given to one step, because none or several were running.
RUN_LOG = "(run)"


class _RunLog:
    """The run's own log file, made at its first line; written from the capture's threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: Any = None
        self._lock = threading.Lock()

    def __call__(self, stream: str, line: str) -> None:
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _masked(texts: Mapping[str, str] | None, mask: Masker) -> Mapping[str, str] | None:
    if texts is None or not mask:
        return texts
    return {k: mask(v) for k, v in texts.items()}


# -- caching ----------------------------------------------------------------------------------


def _cache_plan(store: Store, flow: Flow, options: RunOptions, functions: Functions | None
                ) -> ReusePlan:
    """What a new run reuses from earlier runs (cache hits, ``--from``/``--only``)."""
    memo = cache_rows.InputHashes(store)
    keys = step_keys(flow, functions=functions, namespace=options.namespace, memo=memo)
    memo.save()
    gone = cache_rows.gone_values(store)
    hits = cache_rows.hits(store, {s.name: keys[s.name].key for s in flow.steps
                                   if cache_enabled(flow, s, options.cache)})
    nones = {(h.run_id, h.step) for found in hits.values() for h in found if h.value_none}
    stored = _value_lookup(store.path, gone)

    def value_of(run_id: str, step: str) -> Any:
        return None if (run_id, step) in nones else stored(run_id, step)

    plan = plan_run(
        flow, keys,
        enabled=lambda step: cache_enabled(flow, step, options.cache),
        hits=hits,
        before={name: parts for name, (_, parts) in cache_rows.latest_parts(
            store, flow.name).items()},
        latest=(cache_rows.latest_results(store, flow.name)
                if options.from_step or options.only else {}),
        value_of=value_of,
        outputs_now=lambda step: output_digests(flow, step, memo),
        now=time.time(), functions=functions, from_step=options.from_step,
        only=options.only, in_play=caching_in_play(flow, options.cache))
    outputs = _kept_outputs(store, plan.kept)
    return replace(plan, outputs=outputs) if outputs else plan


def _kept_outputs(store: Store, kept: Mapping[str, str]) -> dict[str, Any]:
    """The outputs of the steps a run reuses, from the runs that made them: the steps after
    a cache hit see ``steps.X.outputs`` as if it had run."""
    by_run: dict[str, list[str]] = {}
    for step, run_id in kept.items():
        by_run.setdefault(run_id, []).append(step)
    found: dict[str, Any] = {}
    for run_id, names in by_run.items():
        try:
            outputs = _recorded_outputs(store, store.step_rows(run_id))
        except ChronumError:
            continue  # that run was deleted: the steps kept from it had no outputs to give
        found.update({name: outputs[name] for name in names if name in outputs})
    return found


def _record_cache(store: Store, flow: Flow, run_id: str, plan: ReusePlan,
                  states: Mapping[str, str], options: RunOptions, functions: Functions | None,
                  mask: Masker, cached_calls: frozenset[str], values: Mapping[str, Any]) -> None:
    """Keep the keys of the steps that ran or were reused, their outputs' hashes, and note
    the values cached steps kept. A step with declared inputs is keyed again now: an input an
    upstream step wrote was not there (or was older) when the run was planned."""
    done = [s for s in flow.steps if states.get(s.name) in ("succeeded", "failed", "cached")]
    if not done:
        return
    memo = cache_rows.InputHashes(store)
    keys = dict(plan.keys)
    if any(s.inputs for s in done if states[s.name] != "cached"):
        # an input gone since: keep the keys the run was planned with
        with contextlib.suppress(ChronumError):
            keys = step_keys(flow, functions=functions, namespace=options.namespace, memo=memo)
    rows = []
    for step in done:
        key = keys.get(step.name)
        if key is None:
            continue
        if states[step.name] == "cached" and step.name not in plan.reasons:
            # reused: its key and parts are those recorded where it was made (the steps
            # row still gets the key, below)
            continue
        outputs = (output_digests(flow, step, memo)
                   if step.output_files and states[step.name] != "failed" else None)
        parts = {k: mask(v) for k, v in key.parts.items()} if mask else key.parts
        rows.append((step.name, key.key, parts, outputs))
    kept = [n for n in cached_calls if states.get(n) == "succeeded"]
    cache_rows.record_keys(store, run_id, flow.name, rows,
                           none_values=[n for n in kept if n not in values],
                           reused={s.name: keys[s.name].key for s in done
                                   if states[s.name] == "cached" and s.name in keys})
    memo.save()
    if kept:
        cache_rows.record_values(store, run_id, flow.name,
                                 [n for n in kept if n in values])


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


def _value_lookup(db_path: Path, gone: frozenset[tuple[str, str]] = frozenset()
                  ) -> Callable[[str, str], Any]:
    def value_of(run_id: str, step: str) -> Any:
        if (run_id, step) in gone:  # cleared by `chronum cache clear`
            raise KeyError(step)
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
    """The run's flow file, by the absolute path stored with the run (never the path as typed,
    which would name another file from another folder)."""
    if (info.get("origin") or {}).get("kind") == "cell":
        raise UsageError(
            f"run {run_id} came from a notebook cell; resume it in a notebook: "
            f"`%load_ext chronum`, define the cell's functions, then `%chronum resume {run_id}`"
        )
    source = info.get("flow_path") or info.get("source")
    if not source or not Path(source).exists():
        raise ChronumError(
            f"run {run_id} cannot be resumed: its flow file {source or '(none)'} is gone")
    return load(source, params=info.get("params") or None)


def _same_flow(run_id: str, info: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
               flow: Flow) -> str | None:
    """Refuse a flow that is not the run's (another name, other steps or needs); a flow file
    whose text changed otherwise (a command edited) is allowed, and the note says so."""
    what = f"the flow {flow.source or flow.name!r}"
    if flow.name != info["flow"]:
        raise UsageError(f"run {run_id} ran flow '{info['flow']}', but {what} is flow "
                         f"'{flow.name}'; resume a run with the flow it ran")
    before = [row["step"] for row in rows if row.get("item") is None]  # not instances
    added = [n for n in flow.step_names if n not in set(before)]
    gone = [n for n in before if n not in set(flow.step_names)]
    if added or gone:
        diff = "; ".join(part for part in (
            f"new: {', '.join(added)}" if added else "",
            f"gone: {', '.join(gone)}" if gone else "") if part)
        raise UsageError(f"{what} has other steps than run {run_id} ({diff}); resume "
                         "needs the same steps: run the flow instead")
    _path, text, shape = flow_identity(flow)
    if info.get("flow_shape") and shape != info["flow_shape"]:
        raise UsageError(f"the steps of {what} need other steps than in run {run_id}; resume "
                         "needs the same steps and needs: run the flow instead")
    if text and info.get("flow_hash") and text != info["flow_hash"]:
        return f"the flow file changed since run {run_id} (same steps and needs)"
    return None


def _recorded_outputs(store: Store, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The outputs of each step of a run, by step; a step kept from an earlier run has them
    in the run that ran it (``cached_from``)."""
    found = {row["step"]: row["outputs"] for row in rows if row.get("outputs")}
    earlier: dict[str, list[str]] = {}
    for row in rows:
        if row["status"] == "cached" and row.get("cached_from") and row["step"] not in found:
            earlier.setdefault(row["cached_from"], []).append(row["step"])
    for from_run, names in earlier.items():
        try:
            before = {r["step"]: r.get("outputs") for r in store.step_rows(from_run)}
        except ChronumError:
            continue  # the earlier run was deleted: its steps had no outputs to give
        found.update({name: before[name] for name in names if before.get(name)})
    return found


def prepare_resume(ref: str, *, db: PathLike | None = None, choose: FlowChooser | None = None,
                   functions: Functions | None = None, again: bool = False,
                   kill: bool = True, namespace: Mapping[str, Any] | None = None
                   ) -> Resumption:
    """What resuming run ``ref`` (an id, a unique prefix, or ``last``) runs and keeps.

    The flow is ``choose(run_id, info)`` when that gives one (the SDK's flow object, a
    notebook cell's flow), else the run's flow file (its stored absolute path), reloaded with
    the run's params; a flow with another name, steps or needs is refused. A run that
    another process is resuming is refused, and so is one whose resume succeeded, unless
    ``again``. What the dead run left running is stopped when the resume starts; with
    ``kill=False`` the resume is refused instead, naming it.
    """
    path = resolve_db_path(db)
    with Store(path) as store:
        run_id = store.resolve_run(ref)
        info = {**store.run(run_id), **store.runner(run_id)}
        rows = store.step_rows(run_id)
        outputs = _recorded_outputs(store, rows)
        conflict = store.resume_conflict(run_id, again)
        alive = _alive_leftovers(store, run_id) if not kill else []
    if info["status"] == "running":
        raise UsageError(f"run {run_id} is still running; wait for it or stop it first")
    masked = [name for name, value in (info.get("params") or {}).items()
              if isinstance(value, str) and MASK in value]
    if masked:
        raise UsageError(
            f"run {run_id} cannot be resumed: its param {masked[0]!r} held a secret, which was "
            "stored masked; give secrets with `secrets:` (read from the environment), not as "
            "params, and start a new run")
    if conflict is not None:
        raise UsageError(conflict)
    flow = choose(run_id, info) if choose is not None else None
    if flow is None:
        flow = _flow_file(run_id, info)
    note = _same_flow(run_id, info, rows, flow)
    if alive:
        raise UsageError(f"{_describe(alive)} still running; stop them, or resume without "
                         "--no-kill to have Chronum stop them")
    if functions is None:
        functions = functions_for(flow)
    with Store(path) as store:
        before = cache_rows.parent_keys(store, run_id)
        edited: dict[str, str] = {}
        keys: dict[str, Any] = {}
        if before:  # the run recorded keys: steps edited since then run again
            memo = cache_rows.InputHashes(store)
            keys = step_keys(flow, functions=functions, namespace=namespace, memo=memo)
            edited = edited_since(keys, {k: parts for k, (_, parts) in before.items()}, run_id)
            memo.save()
    plan = plan_resume(flow, rows, run_id, value_of=_value_lookup(path), functions=functions,
                       changed=edited)
    if keys:
        plan = replace(plan, keys=keys)
    kept_outputs = {name: outputs[name] for name in plan.kept if name in outputs}
    if kept_outputs:
        plan = replace(plan, outputs=kept_outputs)
    if note is not None:
        logger.warning("%s; the steps that run use its current commands", note)
        reasons = {n: f"{note}; ran with its current command" for n in flow.step_names
                   if n not in plan.kept}
        plan = replace(plan, reasons={**reasons, **plan.reasons})
    return Resumption(run_id, info, flow, plan)


# -- what a dead runner left behind ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Leftover:
    """What one attempt of a dead run started and is still alive: the live members of its
    process group, and its container if that still runs."""

    step: str
    attempt: int
    pgid: int | None
    pids: tuple[int, ...]
    container: str | None
    run_id: str = ""

    def __str__(self) -> str:
        parts = []
        if self.pids:
            shown = ", ".join(map(str, self.pids[:5])) + (", ..." if len(self.pids) > 5 else "")
            parts.append(f"process group {self.pgid} (pids {shown})")
        if self.container:
            parts.append(f"container {self.container}")
        run = f"run {self.run_id} " if self.run_id else ""
        return f"{run}step '{self.step}' attempt {self.attempt}: {' and '.join(parts)}"


def _describe(leftovers: Sequence[Leftover]) -> str:
    return "; ".join(map(str, leftovers))


def _alive_leftovers(store: Store, run_id: str) -> list[Leftover]:
    """What run ``run_id`` left alive, and what its resumes whose runner died left: each may
    be running a step this resume is about to run again."""
    found: list[Leftover] = []
    for rid in (run_id, *store.dead_resumes(run_id)):
        found += [replace(left, run_id=rid)
                  for left in find_leftovers(store.runner(rid), store.leftovers(rid))]
    return found


def _groups() -> dict[int, list[int]] | None:
    """Live (not zombie) processes by process group, from /proc; None where there is none."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    groups: dict[int, list[int]] = {}
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2:].split()
        if len(fields) > 2 and fields[0] not in ("Z", "X"):
            groups.setdefault(int(fields[2]), []).append(int(name))
    return groups


def _group_alive(pgid: int, proc_start: str | None, groups: dict[int, list[int]] | None
                 ) -> tuple[int, ...]:
    """The live members of the recorded group ``pgid``. The kernel never reuses a pid while
    a group of that number has members, so they are the step's; only a leader with another
    start time (a new process that got the pid, then made a group of its own) is not."""
    if groups is None:
        try:
            os.killpg(pgid, 0)
        except PermissionError:
            return (pgid,)
        except OSError:
            return ()
        return (pgid,)
    members = groups.get(pgid, [])
    if pgid in members and proc_start is not None and process_start(pgid) != proc_start:
        return ()
    return tuple(sorted(members))


def _docker() -> str | None:
    import shutil

    return shutil.which("docker")


def _container_running(name: str) -> bool:
    import subprocess

    docker = _docker()
    if docker is None:
        return False
    try:
        out = subprocess.run([docker, "inspect", "-f", "{{.State.Running}}", name],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == "true"


def find_leftovers(info: Mapping[str, Any], recorded: Sequence[Mapping[str, Any]]
                   ) -> list[Leftover]:
    """Of what the run's running attempts started (``Store.leftovers``), what is still alive.

    Processes of a run recorded on another host cannot be seen from here: none are found."""
    if not recorded or info.get("host") not in (None, host_name()):
        return []
    groups = _groups()
    found = []
    for row in recorded:
        pids = _group_alive(row["pgid"], row["proc_start"], groups) if row["pgid"] else ()
        container = row["container"]
        if container and not _container_running(container):
            container = None
        if pids or container:
            found.append(Leftover(row["step"], row["attempt"], row["pgid"], pids, container))
    return found


def stop_leftovers(leftovers: Sequence[Leftover], grace: float) -> None:
    """SIGTERM each process group and remove each container; SIGKILL the groups that are
    still there after ``grace`` seconds; wait (briefly) until they are gone."""
    import subprocess

    def signal_all(sig: signal.Signals) -> None:
        for left in leftovers:
            if left.pids and left.pgid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(left.pgid, sig)

    def alive() -> bool:
        groups = _groups()
        return any(_group_alive(left.pgid, None, groups)
                   for left in leftovers if left.pids and left.pgid)

    signal_all(signal.SIGTERM)
    docker = _docker()
    for left in leftovers:
        if left.container and docker is not None:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                subprocess.run([docker, "rm", "-f", left.container], capture_output=True,
                               timeout=60)
    deadline = time.monotonic() + grace
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    signal_all(signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while alive() and time.monotonic() < deadline:
        time.sleep(0.02)


def _stop_leftovers_of(store: Store, run_id: str, grace: float) -> None:
    found = _alive_leftovers(store, run_id)
    if found:
        logger.warning("stopping what was left running before run %s resumes: %s", run_id,
                       _describe(found))
        stop_leftovers(found, grace)


# -- cancelling a run whose runner is gone ---------------------------------------------------


def cancel_run(ref: str, *, db: PathLike | None = None, force: bool = False) -> str:
    """Record run ``ref`` ``cancelled`` when its runner is gone, stopping what it left
    running; returns one line saying what was done.

    A run whose runner still runs on this host is refused: stop that process (Ctrl-C, or
    ``kill PID``), and it records the run cancelled itself. A run recorded by another host
    cannot be checked from here: ``force=True`` says its runner is gone (its processes there
    cannot be stopped from here).
    """
    path = resolve_db_path(db)
    with Store(path) as store:
        run_id = store.resolve_run(ref)
        # store.run first: a local run whose runner died is marked interrupted there
        info = {**store.run(run_id), **store.runner(run_id)}
        status, host, pid = info["status"], info.get("host"), info.get("pid")
        if status not in ("running", "interrupted"):
            raise UsageError(f"run {run_id} is {status}; only a running or interrupted run "
                             "can be cancelled")
        local = host in (None, host_name())
        if status == "running" and local:
            raise UsageError(f"run {run_id} is still running in process {pid} on this host; "
                             f"stop that process (Ctrl-C, or `kill {pid}`) and it records "
                             "the run cancelled")
        if status == "running" and not force:
            raise UsageError(f"run {run_id} was recorded on host {host}, where its runner "
                             f"cannot be checked from here; if it is gone, `chronum cancel "
                             f"{run_id} --force`")
        found = find_leftovers(info, store.leftovers(run_id)) if local else []
        if found:
            stop_leftovers(found, _grace_from_env())
        _record_cancelled(store, run_id, info)
    said = f"run {run_id} cancelled"
    if found:
        said += f"; stopped {_describe(found)}"
    if not local:
        said += f"; anything it left running on host {host} was not stopped"
    return said


def _record_cancelled(store: Store, run_id: str, info: Mapping[str, Any]) -> None:
    """Through the store's recorder (the one fold): active steps cancelled, pending skipped,
    the run cancelled."""
    now = time.time()
    reason = "run cancelled by `chronum cancel` (its runner was gone)"
    n_failed = 0
    for row in info["steps"]:
        name, status = row["step"], row["status"]
        if status in ("running", "retrying"):
            started = row["started_at"] or now
            store.record(StepCancelled(run_id=run_id, at=now, step=name,
                                       attempt=row["attempts"] or None,
                                       duration_s=now - started, reason=reason))
        elif status == "pending":
            store.record(StepSkipped(run_id=run_id, at=now, step=name, status="skipped",
                                     reason=reason))
        elif status == "failed":
            n_failed += 1
    store.record(RunFinished(run_id=run_id, at=now, status="cancelled",
                             duration_s=now - info["started_at"], n_failed=n_failed))
    store.flush()
