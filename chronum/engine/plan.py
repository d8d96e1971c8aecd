"""The reuse plan: which steps of a new run are kept from an earlier run, and their values.

Resume makes one today (``plan_resume``); caching and ``--from STEP`` will extend the same plan
rather than write a second planner. The engine takes a plan as it is: kept steps are recorded
``cached`` with the run that produced them, their values handed to the steps that need them.

A plan is worked out from what the store recorded (step rows) and what it kept (values), both
passed in, so this module reads no database and stays testable with plain dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .. import dag
from ..executors.python import CallPlan, _CallError, _import_target, call_plan
from ..model import Flow, Step

__all__ = ["ReusePlan", "ValueLookup", "plan_resume"]

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
                functions: Mapping[str, Callable[..., Any]] | None = None) -> ReusePlan:
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

    reasons: dict[str, str] = {}
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
                     _frozen(_kept_instances(flow, rows_by_step.values(), run_id, kept,
                                             value_of)))


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
