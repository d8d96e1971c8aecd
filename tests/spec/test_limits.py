"""Every number a flow sets is bounded, and every name is one that can reach its target."""

from __future__ import annotations

import pytest

from chronum.errors import SpecError
from chronum.spec import loads

STEP = """
name: f
{flow}
steps:
  - name: a
    run: echo hi
{step}
"""


def _problems(flow: str = "", step: str = "") -> list[str]:
    text = STEP.format(flow=flow, step="\n".join("    " + s for s in step.splitlines()))
    with pytest.raises(SpecError) as info:
        loads(text, filename="flow.yaml")
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(("flow", "step", "where"), [
    ("maxParallel: 100000000", "", "maxParallel"),
    ("defaultRetry: 1000000", "", "defaultRetry"),
    ("defaultTimeout: 1e300", "", "defaultTimeout"),
    ("defaultTimeout: .inf", "", "defaultTimeout"),
    ("defaultTimeout: .nan", "", "defaultTimeout"),
    ("backoff: {base: 1e300}", "", "backoff.base"),
    ("backoff: {max: .inf}", "", "backoff.max"),
    ("backoff: {factor: 1e9}", "", "backoff.factor"),
    ("", "timeout: 1e12", "steps[0].timeout"),
    ("", "retry: 99999999999999999999999999", "steps[0].retry"),
    ("", "retry: {limit: 5000}", "steps[0].retry.limit"),
    ("", "retry: {limit: 2, backoff: {base: .inf}}", "steps[0].retry.backoff.base"),
], ids=lambda v: v if isinstance(v, str) and v else "-")
def test_nonsense_numbers_are_located_errors(flow: str, step: str, where: str):
    problems = _problems(flow, step)
    assert len(problems) == 1, problems
    assert problems[0].startswith("flow.yaml:") and where in problems[0], problems
    assert "must be at most" in problems[0] or "finite" in problems[0], problems


def test_the_largest_accepted_values_load():
    flow = loads(STEP.format(
        flow="maxParallel: 10000\ndefaultRetry: 1000\nbackoff: {base: 86400, factor: 100}",
        step="    timeout: 2592000"), filename="flow.yaml")
    assert flow.max_parallel == 10_000 and flow.steps[0].retry.limit == 1_000


def test_step_names_longer_than_100_characters_are_a_located_error():
    name = "s" * 101
    text = STEP.format(flow="", step="").replace("name: a", f"name: {name}")
    with pytest.raises(SpecError) as info:
        loads(text, filename="flow.yaml")
    (problem,) = info.value.problems
    assert str(problem).startswith("flow.yaml:5:")
    assert "101 characters long, over the limit of 100" in str(problem)
    loads(text.replace(name, "s" * 100), filename="flow.yaml")  # 100 is fine
