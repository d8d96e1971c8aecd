"""What benchmarks/conditions.py measures rests on: the same W1 shape, a condition on each step
that holds, and a handler as the join."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import conditions  # noqa: E402
import workloads as wl  # noqa: E402

from chronum.spec import loads  # noqa: E402


def test_the_conditional_flow_is_w1_with_an_if_on_every_step():
    plain = loads(wl.flow_yaml(wl.fan_in(50)), filename="plain.yaml")
    cond = loads(conditions.conditional_yaml(50), filename="if.yaml")
    assert [(s.name, s.needs) for s in cond.steps] == [(s.name, s.needs) for s in plain.steps]
    assert all(s.condition is not None for s in cond.steps)
    assert [s.condition.text for s in cond.steps[:-1]] == [conditions.CONDITION] * 50
    join = cond.steps[-1].condition
    assert join is not None and join.status_check and join.text == conditions.JOIN_CONDITION
    assert cond.params == {"mode": "full"} and cond.max_parallel == plain.max_parallel
