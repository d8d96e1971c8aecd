"""The reuse plan: which steps of a new run are kept from an earlier run, and their values.

Resume makes one today (``plan_resume``); caching and ``--from STEP`` will extend the same plan
rather than write a second planner. The engine takes a plan as it is: kept steps are recorded
``cached`` with the run that produced them, their values handed to the steps that need them.

A plan is worked out from what the store recorded (step rows) and what it kept (values), both
passed in, so this module reads no database and stays testable with plain dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from .. import dag
from ..errors import UsageError
from ..executors.python import CallPlan, _CallError, _import_target, call_plan
from ..model import Flow, Step
from .cache import UNSEEN, StepKey, why_changed

__all__ = ["EarlierResult", "ReusePlan", "ValueLookup", "edited_since", "plan_resume",
           "plan_run"]

#: ``value_of(run_id, step)``: the value ``step`` returned in ``run_id``; KeyError when it was
#: not kept (a value may itself be None).
ValueLookup = Callable[[str, str], Any]


def _frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, slots=True)
class ReusePlan:
    """Steps kept from earlier runs, and why some steps that succeeded run again.

    ``kept`` maps a step to the run that produced it; ``values`` holds the values of kept steps
    that returned one; ``reasons`` says why a step runs although it had succeeded.
    """

    parent_run_id: str | None = None
    kept: Mapping[str, str] = field(default_factory=_frozen)
    values: Mapping[str, Any] = field(default_factory=_frozen)
    reasons: Mapping[str, str] = field(default_factory=_frozen)
    #: Why each kept step is kept ("cached: same key as run ..."); empty: kept on resume.
    cached_reasons: Mapping[str, str] = field(default_factory=_frozen)
    #: Steps this run leaves out (``--only``), with the reason.
    skipped: Mapping[str, str] = field(default_factory=_frozen)
    #: Each step's cache key (``engine.cache.StepKey``) when the run deals with the cache.
    keys: Mapping[str, StepKey] = field(default_factory=_frozen)
    #: The outputs (``$CHRONUM_OUTPUT``, ``ctx.output``) of kept steps that wrote some.
    outputs: Mapping[str, Mapping[str, str]] = field(default_factory=_frozen)
    #: Instances of fan-out steps that run again, kept: step -> instance index ->
    #: (the run that produced it, its item as JSON, its value). The engine keeps one only
    #: when the step's items give the same item at that index again.
    instances: Mapping[str, Mapping[int, tuple[str, str, Any]]] = field(
        default_factory=_frozen)


class _Takes:
    """Whether a step that runs is handed a need's value, by its function's real parameters.

    The function comes from ``functions`` (a flow built in Python in this process), else it is
    imported by its ``call: module:function`` name, as the python executor will import it when
    the step runs. Only when it cannot be found (a bare notebook name in another process, a
    module that does not import) is the value assumed to be taken, and ``why`` says so.
    """

    def __init__(self, flow: Flow, functions: Mapping[str, Callable[..., Any]] | None) -> None:
        self._flow = flow
        self._functions = functions or {}
        self._plans: dict[str, CallPlan | str] = {}

    def _plan(self, step: Step) -> CallPlan | str:
        known = self._plans.get(step.name)
        if known is not None:
            return known
        func = self._functions.get(step.name)
        plan: CallPlan | str
        if func is not None:
            plan = call_plan(func)
        elif step.call and ":" in step.call:
            try:
                plan = call_plan(_import_target(step.call, self._flow.base_dir))
            except _CallError as exc:
                plan = f"its function {step.call} cannot be looked at here ({exc})"
        else:
            plan = (f"its function {step.call!r} is a notebook name, not defined in this "
                    "process")
        self._plans[step.name] = plan
        return plan

    def __call__(self, step: Step, need: str) -> tuple[bool, str]:
        """(takes it, why we think so when we could not tell)."""
        if step.foreach == ("from", need):
            return True, ""  # its items
        plan = self._plan(step)
        if isinstance(plan, str):
            return True, plan
        return plan.takes(need), ""


def plan_resume(flow: Flow, rows: Iterable[Mapping[str, Any]], run_id: str, *,
                value_of: ValueLookup,
                functions: Mapping[str, Callable[..., Any]] | None = None,
                changed: Mapping[str, str] | None = None) -> ReusePlan:
    """Resuming ``run_id`` (its step ``rows`` as stored): keep what succeeded (or was kept)
    with nothing upstream that runs again; run the rest.

    A kept ``call:`` step whose value is gone runs again too when a step that runs takes that
    value by its function's actual parameters (the function looked up as the python executor
    will find it), and so does everything downstream of it; the reason is in the plan.
    """
    kept: dict[str, str] = {}
    rows_by_step = {r["step"]: r for r in rows}
    for step in flow.steps:
        row = rows_by_step.get(step.name)
        if row is not None and row["status"] in ("succeeded", "cached"):
            kept[step.name] = row.get("cached_from") or run_id
    reasons: dict[str, str] = {}
    for name, why in (changed or {}).items():  # edited since the run: runs again
        if kept.pop(name, None) is not None:
            reasons[name] = why
    for name in dag.order(flow):
        if name in kept:
            ran = [n for n in flow.step(name).needs if n not in kept]
            if ran and ran[0] in reasons:
                del kept[name]
                reasons[name] = f"upstream {ran[0]} ran"
    for name in dag.downstream(flow, set(flow.step_names) - set(kept)):
        kept.pop(name, None)

    by_name = {s.name: s for s in flow.steps}
    values: dict[str, Any] = {}
    available: set[str] = set()
    for name, from_run in kept.items():
        if not by_name[name].call:
            available.add(name)  # only python calls have values
            continue
        try:
            values[name] = value_of(from_run, name)
        except KeyError:
            continue
        available.add(name)

    takes = _Takes(flow, functions)
    while True:
        gone: list[tuple[str, str, str]] = []
        for step in flow.steps:
            if step.name in kept or not (step.call or step.foreach is not None):
                continue
            for need in step.needs:
                if need in kept and need not in available:
                    taken, unsure = takes(step, need)
                    if taken:
                        gone.append((need, step.name, unsure))
        if not gone:
            break
        for need, by, unsure in gone:
            if kept.pop(need, None) is not None:
                why = f"re-run: its value is needed by '{by}' and was not kept"
                if unsure:
                    why += f" ('{by}' is assumed to take it: {unsure})"
                reasons[need] = why
        for name in dag.downstream(flow, [n for n in by_name if n not in kept]):
            kept.pop(name, None)
    kept_values = {k: v for k, v in values.items() if k in kept and v is not None}
    return ReusePlan(run_id, _frozen(kept), _frozen(kept_values), _frozen(reasons),
                     instances=_frozen(_kept_instances(flow, rows_by_step.values(), run_id,
                                                       kept, value_of)))


def _kept_instances(flow: Flow, rows: Iterable[Mapping[str, Any]], run_id: str,
                    kept: Mapping[str, str], value_of: ValueLookup
                    ) -> dict[str, Mapping[int, tuple[str, str, Any]]]:
    """A fan-out step that runs again while everything it needs is kept: its instances that
    succeeded are kept one by one, so the resume runs only the others.

    A ``call:`` instance's value comes from the step's list of values in that run; when the
    list was not kept (a run in another process without ``persist: true``), every instance
    runs again, as any step whose value is gone.
    """
    by_step: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:  # in position order: a step's instances in item order
        if row.get("item") is not None:
            by_step.setdefault(row["step"].partition("[")[0], []).append(row)
    out: dict[str, Mapping[int, tuple[str, str, Any]]] = {}
    for step in flow.steps:
        instances = by_step.get(step.name)
        if not instances or step.name in kept or any(
                n not in kept and step.foreach != ("from", n) for n in step.needs):
            continue  # (a source that runs again may give other items: compared item by item)
        values: Any = None
        if step.call:
            try:
                values = value_of(run_id, step.name)
            except KeyError:
                continue
            if not isinstance(values, list) or len(values) != len(instances):
                continue
        keep = {i: (row.get("cached_from") or run_id, row["item"],
                    None if values is None else values[i])
                for i, row in enumerate(instances) if row["status"] in ("succeeded", "cached")}
        if keep:
            out[step.name] = MappingProxyType(keep)
    return out


def edited_since(keys: Mapping[str, StepKey], before: Mapping[str, Mapping[str, str]],
                 run_id: str) -> dict[str, str]:
    """Steps whose key differs from the one recorded in run ``run_id`` (``before``: step ->
    parts), with the reason "definition changed since run X" (or which input changed)."""
    out: dict[str, str] = {}
    for name, key in keys.items():
        parts = before.get(name)
        if parts is None:
            continue
        own = {k: v for k, v in key.parts.items() if not k.startswith("need:")}
        old = {k: v for k, v in parts.items() if not k.startswith("need:")}
        if own.get("definition", "").startswith(UNSEEN) or \
                old.get("definition", "").startswith(UNSEEN):
            own.pop("definition", None)  # a function not defined here: not a change
            old.pop("definition", None)
        why = why_changed(own, old)
        if why is None:
            continue
        if why.startswith("input "):
            out[name] = f"{why} since run {run_id}"
        else:
            out[name] = f"definition changed since run {run_id}"
    return out


class EarlierResult(Protocol):
    """An earlier succeeded step with the same key (``store.keys.Hit``)."""

    @property
    def run_id(self) -> str: ...
    @property
    def step(self) -> str: ...
    @property
    def finished_at(self) -> float | None: ...
    @property
    def outputs(self) -> Mapping[str, str | None]: ...


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _outputs_problem(now: Mapping[str, str | None], hit: EarlierResult) -> str | None:
    missing = [name for name, digest in now.items() if digest is None]
    if missing:
        return "outputs missing: " + ", ".join(missing)
    changed = [name for name, digest in now.items() if hit.outputs.get(name) != digest]
    if changed:
        return "outputs changed: " + ", ".join(changed)
    return None


def _unknown(option: str, name: str, flow: Flow) -> UsageError:
    import difflib

    close = difflib.get_close_matches(name, flow.step_names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else \
        f"; the steps are: {', '.join(flow.step_names[:10])}"
    return UsageError(f"{option}: unknown step {name!r}{hint}")


def plan_run(flow: Flow, keys: Mapping[str, StepKey], *,
             enabled: Callable[[Step], bool],
             hits: Mapping[str, Sequence[EarlierResult]],
             before: Mapping[str, Mapping[str, str]],
             latest: Mapping[str, str],
             value_of: ValueLookup,
             outputs_now: Callable[[Step], Mapping[str, str | None]],
             now: float,
             functions: Mapping[str, Callable[..., Any]] | None = None,
             from_step: str | None = None, only: Sequence[str] = (),
             in_play: bool = True) -> ReusePlan:
    """A new run's plan: which steps are reused from earlier runs (a cache hit, or what
    ``--from``/``--only`` trust), and why every other step runs.

    A step is reused when caching is ``enabled`` for it, no step it needs runs, and an earlier
    succeeded step had the same key (``hits``) whose declared outputs are still there with the
    content recorded then (``outputs_now``) and which is not older than its ``cacheFor``. A
    reused python step whose value a running step takes must have that value (``value_of``),
    else it runs too, "value gone". ``before`` holds each step's most recent key parts: what
    changed is said against them. ``--from STEP`` runs STEP and its downstream and reuses the
    latest result (``latest``) of what is upstream; ``--only`` runs just the named steps,
    reuses the latest results of what they need (a missing one is an error naming it) and
    leaves the rest out.
    """
    by_name = {s.name: s for s in flow.steps}
    for option, names in (("--from", [from_step] if from_step else []), ("--only", only)):
        for name in names:
            if name not in by_name:
                raise _unknown(option, name, flow)
    selected = set(only)
    needed_by_only: set[str] = set()
    for name in only:
        needed_by_only |= dag.upstream(flow, name)
    needed_by_only -= selected
    forced_from: set[str] = set()
    upstream_of_from: set[str] = set()
    if from_step:
        forced_from = {from_step, *dag.downstream(flow, [from_step])}
        upstream_of_from = dag.upstream(flow, from_step)
    # ``keys`` come needs first (``step_keys``): that order serves when it covers every step
    order = list(keys) if len(keys) == len(flow.steps) else dag.order(flow)
    outputs_cache: dict[str, Mapping[str, str | None]] = {}
    takes = _Takes(flow, functions)
    forced: dict[str, str] = {}

    while True:
        kept: dict[str, str] = {}
        kept_step: dict[str, str] = {}
        pinned: dict[str, str] = {}  # reused because --from/--only trust it: option to name
        cached_reasons: dict[str, str] = {}
        reasons: dict[str, str] = {}
        skipped: dict[str, str] = {}
        for name in order:
            step = by_name[name]
            trusted = ""
            if only:
                if name in selected:
                    reasons[name] = f"forced by --only {name}"
                    continue
                if name not in needed_by_only:
                    skipped[name] = "not selected by --only"
                    continue
                trusted = "--only " + " ".join(only)
            elif from_step:
                if name in forced_from:
                    reasons[name] = f"forced by --from {from_step}"
                    continue
                if name in upstream_of_from:
                    trusted = f"--from {from_step}"
            if trusted:
                rid = latest.get(name)
                if rid is None:
                    raise UsageError(
                        f"{trusted}: step {name!r} has no earlier result to reuse; run it "
                        f"first (--only {name}, or the whole flow)")
                kept[name], kept_step[name], pinned[name] = rid, name, trusted
                cached_reasons[name] = f"reused by {trusted.split()[0]}: latest result, run {rid}"
                continue
            key = keys.get(name)
            ran = [n for n in step.needs if n not in kept]
            prev = before.get(name)
            changed = why_changed(key.parts, prev, ran) if key and prev is not None else None
            if name in forced:
                reasons[name] = forced[name]
                continue
            if not enabled(step):
                if in_play:
                    reasons[name] = "cache off"
                continue
            if ran:
                reasons[name] = changed or (f"upstream {ran[0]} ran" if prev is not None
                                            else "no earlier result")
                continue
            miss: str | None = None
            for hit in hits.get(name, ()):
                if step.cache_for is not None and (
                        hit.finished_at is None or now - hit.finished_at > step.cache_for):
                    miss = miss or f"cache expired (older than {_duration(step.cache_for)})"
                    continue
                if step.output_files:
                    if name not in outputs_cache:
                        outputs_cache[name] = outputs_now(step)
                    problem = _outputs_problem(outputs_cache[name], hit)
                    if problem is not None:
                        miss = miss or problem
                        continue
                kept[name], kept_step[name] = hit.run_id, hit.step
                cached_reasons[name] = (f"cached: same key as run {hit.run_id[:4]}…, "
                                        f"step {hit.step}")
                break
            else:
                reasons[name] = miss or changed or "no earlier result"

        values: dict[str, Any] = {}
        gone: list[str] = []
        for step in flow.steps:
            if step.name in kept or step.name in skipped or not step.call:
                continue
            for need in step.needs:
                if need not in kept or need in values or not by_name[need].call:
                    continue
                if not takes(step, need)[0]:
                    continue
                try:
                    values[need] = value_of(kept[need], kept_step[need])
                except KeyError:
                    gone.append(need)
        if not gone:
            break
        for name in gone:
            if name in pinned:
                raise UsageError(
                    f"{pinned[name]}: the value of step {name!r} from run {kept[name]} is gone; "
                    f"run it first (--only {name}, or --from {name})")
            forced[name] = "value gone"

    kept_values = {k: v for k, v in values.items() if v is not None}
    return ReusePlan(None, _frozen(kept), _frozen(kept_values), _frozen(reasons),
                     _frozen(cached_reasons), _frozen(skipped), _frozen(keys))
