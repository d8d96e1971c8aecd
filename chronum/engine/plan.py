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
from ..executors.python import call_plan
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


def _takes(step: Step, need: str, functions: Mapping[str, Callable[..., Any]] | None) -> bool:
    """Whether ``step`` is handed ``need``'s value (a function unknown here: assume it is)."""
    func = functions.get(step.name) if functions else None
    return func is None or call_plan(func).takes(need)


def plan_resume(flow: Flow, rows: Iterable[Mapping[str, Any]], run_id: str, *,
                value_of: ValueLookup,
                functions: Mapping[str, Callable[..., Any]] | None = None) -> ReusePlan:
    """Resuming ``run_id`` (its step ``rows`` as stored): keep what succeeded (or was kept)
    with nothing upstream that runs again; run the rest.

    A kept ``call:`` step whose value is gone runs again too when a step that runs takes that
    value, and so does everything downstream of it; the reason is in the plan.
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
    while True:
        gone = [(need, step.name) for step in flow.steps
                if step.name not in kept and step.call
                for need in step.needs
                if need in kept and need not in available and _takes(step, need, functions)]
        if not gone:
            break
        for need, by in gone:
            if kept.pop(need, None) is not None:
                reasons[need] = f"re-run: its value is needed by '{by}' and was not kept"
        for name in dag.downstream(flow, [n for n in by_name if n not in kept]):
            kept.pop(name, None)
    kept_values = {k: v for k, v in values.items() if k in kept and v is not None}
    return ReusePlan(run_id, _frozen(kept), _frozen(kept_values), _frozen(reasons))
