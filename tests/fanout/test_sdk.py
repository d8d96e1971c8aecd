"""``@flow.step(foreach=...)``, ``matrix=`` and ``flow.shell(..., foreach=...)``, run for real."""

from __future__ import annotations

from pathlib import Path

import pytest

import chronum
from chronum.errors import SpecError


def test_foreach_over_a_step_and_a_matrix(tmp_path: Path):
    flow = chronum.Flow("sdk-fanout", max_parallel=3)

    @flow.step()
    def list_files() -> list[str]:
        return ["a", "b", "c"]

    @flow.step(foreach=list_files, concurrency=2)
    def shout(item: str) -> str:
        return item.upper()

    @flow.step(matrix={"region": ["eu", "us"], "size": [1, 2]})
    def cell(region: str, size: int, item: dict[str, object]) -> str:
        return f"{region}{size}" if item == {"region": region, "size": size} else "?"

    @flow.step()
    def report(shout: list[str], cell: list[str]) -> str:
        return "".join(shout) + " " + ",".join(cell)

    flow.shell("each", 'test "$CHRONUM_ITEM" = x || test "$CHRONUM_ITEM" = y',
               foreach=["x", "y"])

    model = flow.build()
    assert model.step("shout").foreach == ("from", "list_files")
    assert model.step("shout").needs == ("list_files",)  # `item` is no step to need
    assert model.step("shout").concurrency == 2
    assert model.step("report").needs == ("shout", "cell")
    run = flow.run(db=tmp_path / "c.db")
    assert run.status == "succeeded", run.errors
    assert run.outputs["report"] == "ABC eu1,eu2,us1,us2"
    steps = chronum.steps(run.run_id, db=tmp_path / "c.db")
    assert {"shout[2]", "cell[region=us,size=2]", "each[1]"} <= set(steps["step"])


def test_foreach_by_name_and_as_yaml():
    flow = chronum.Flow("named")
    flow.shell("src", "true")

    @flow.step(foreach="src")
    def use(item: object) -> object:
        return item

    assert flow.build().step("use").foreach == ("from", "src")
    assert flow.document()[1]["steps"][1]["foreach"] == {"from": "src"}


def test_a_bad_matrix_is_reported_at_the_decorator():
    flow = chronum.Flow("bad")

    @flow.step(matrix={"item": [1]})
    def f(item: int) -> int:
        return item

    with pytest.raises(SpecError) as info:
        flow.build()
    problem = info.value.problems[0]
    assert problem.location.line == f.__code__.co_firstlineno  # the decorator's line
    assert "the matrix key 'item' is reserved" in problem.message
