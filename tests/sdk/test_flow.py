"""Building flows in Python: options, inferred needs, validation at the decorator's line, YAML."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import chronum
import chronum.model
import chronum.spec
from chronum.errors import SpecError, UsageError

from . import steps

HERE = Path(__file__).name


def _line_of(marker: str) -> int:
    """The line of this file holding ``marker`` (so tests do not hard-code line numbers)."""
    lines = Path(__file__).read_text().splitlines()
    return next(i for i, text in enumerate(lines, 1) if marker in text and "_line_of" not in text)


def test_public_flow_is_the_builder_and_the_model_stays_in_model():
    assert chronum.Flow.__module__ == "chronum.sdk._flow"
    assert chronum.model.Flow is not chronum.Flow


def test_options_become_the_flow_fields_and_needs_come_from_parameters():
    flow = chronum.Flow("etl", max_parallel=2, stop_on_fail=True, default_retry=1,
                        default_timeout=30, backoff={"base": 0.5, "jitter": "none"},
                        env={"STAGE": "dev"}, params={"region": "eu"})
    flow.step()(steps.load)
    flow.step(retry={"limit": 3, "exit_codes": [1]}, timeout=5, persist=True)(steps.clean)
    flow.step("total", continue_on_error=True)(steps.report)
    built = flow.build()
    assert (built.name, built.max_parallel, built.stop_on_fail, built.default_retry,
            built.default_timeout) == ("etl", 2, True, 1, 30)
    assert built.backoff == chronum.Backoff(base=0.5, jitter="none")
    assert dict(built.env) == {"STAGE": "dev"} and dict(built.params) == {"region": "eu"}
    load, clean, total = built.steps
    assert (load.executor, load.call, load.needs) == ("python", "sdk.steps:load", ())
    assert load.retry.limit == 1  # defaultRetry applies, as in YAML
    assert clean.needs == ("load",) and clean.retry.limit == 3
    assert clean.retry.exit_codes == (1,) and clean.timeout == 5
    assert dict(clean.options) == {"persist": True}
    # `ctx` has a default and names the context: never a need
    assert (total.name, total.needs, total.continue_on_error) == ("total", ("clean",), True)


def test_shell_script_and_explicit_needs_by_name_or_function():
    flow = chronum.Flow("mixed")
    build = flow.shell("build", "make", shell="bash")
    flow.script("prep", "scripts/prep.py", needs=build)

    @flow.step(needs=["prep", build])
    def fetch() -> int:
        return 1

    flow.shell("after", "true", needs=[fetch])
    model = flow.build()
    assert [(s.name, s.executor, s.run, s.needs) for s in model.steps] == [
        ("build", "shell", "make", ()),
        ("prep", "python", "scripts/prep.py", ("build",)),
        ("fetch", "python", None, ("prep", "build")),
        ("after", "shell", "true", ("fetch",)),
    ]
    assert model.step("build").shell == "bash"


def test_the_decorator_returns_the_function_itself():
    flow = chronum.Flow("same")

    @flow.step
    def plain(x: int = 2) -> int:
        return x * 21

    assert plain() == 42 and plain.__name__ == "plain"
    assert flow.step_names == ("plain",)


def test_unknown_dependency_is_reported_at_the_decorator_with_a_hint():
    flow = chronum.Flow("bad")
    flow.step()(steps.load)
    flow.shell("copy", "true", needs=["laod"])  # marker: unknown-need
    with pytest.raises(SpecError) as err:
        flow.build()
    line = _line_of("marker: unknown-need")
    assert str(err.value) == (f"{__file__}:{line}:1: copy.needs[0]: unknown step 'laod' "
                              f"(did you mean 'load'?)")


def test_a_parameter_that_matches_no_step_and_has_no_default():
    flow = chronum.Flow("bad")
    flow.step()(steps.load)
    flow.step()(steps.needs_missing)  # marker: missing-param
    with pytest.raises(SpecError) as err:
        flow.build()
    line = _line_of("marker: missing-param")
    assert str(err.value) == (
        f"{__file__}:{line}:1: needs_missing: parameter 'lod' of needs_missing() matches no "
        f"step and has no default (did you mean 'load'?)")


def test_cycles_and_duplicates_are_reported_where_they_were_written():
    flow = chronum.Flow("bad")
    flow.shell("a", "true", needs="c")  # marker: cycle-start
    flow.shell("b", "true", needs="a")
    flow.shell("c", "true", needs="b")
    flow.shell("b", "false")  # marker: duplicate
    with pytest.raises(SpecError) as err:
        flow.build()
    first_b = _line_of("marker: cycle-start") + 1
    assert [str(p) for p in err.value.problems] == [
        f"{__file__}:{_line_of('marker: cycle-start')}:1: a: cycle: a -> b -> c -> a (remove "
        "one need on this loop, e.g. 'c' from the needs of 'a')",
        f"{__file__}:{_line_of('marker: duplicate')}:1: b.name: duplicate step name 'b' "
        f"(the first is on line {first_b})",
    ]


def test_flow_level_problems_point_at_the_constructor():
    flow = chronum.Flow("bad", max_parallel=0)  # marker: flow-line
    flow.shell("a", "true")
    with pytest.raises(SpecError) as err:
        flow.build()
    (problem,) = err.value.problems
    assert problem.location.line == _line_of("marker: flow-line")
    assert problem.location.path == "maxParallel"


def test_needs_naming_a_function_that_is_not_a_step():
    flow = chronum.Flow("bad")
    flow.shell("a", "true", needs=[steps.load])
    with pytest.raises(SpecError, match=r"load\(\) is not a step of flow 'bad'"):
        flow.build()


def test_to_yaml_round_trips_to_an_equal_flow():
    flow = chronum.Flow("etl", max_parallel=2, default_retry=1, env={"A": "1"},
                        backoff=chronum.Backoff(base=2, factor=3, max=10, jitter="equal"))
    flow.step()(steps.load)
    flow.step(persist=True, retry=chronum.RetryPolicy(limit=2, exit_codes=(1, 75)))(steps.clean)
    flow.step(timeout=9.5)(steps.report)
    flow.shell("notify", "echo done", needs=[steps.report], env={"X": "y"})
    text = flow.to_yaml()
    assert "call: sdk.steps:clean" in text and "persist: true" in text
    assert chronum.spec.loads(text) == flow.build()


def test_to_yaml_refuses_functions_that_cannot_be_imported():
    flow = chronum.Flow("local")

    @flow.step()
    def inner() -> int:
        return 1

    with pytest.raises(UsageError, match=r"cannot be imported by name: inner \(sdk.test_flow:"
                                         r"inner\)"):
        flow.to_yaml()


def test_run_passes_values_by_name_and_keeps_them_in_outputs(tmp_path: Path):
    flow = chronum.Flow("values")
    seen: list[object] = []

    @flow.step()
    def numbers() -> list[int]:
        return [1, 2, 3]

    @flow.step()
    def total(numbers: list[int], ctx: object) -> int:
        seen.append(ctx)
        return sum(numbers)

    run = flow.run(db=tmp_path / "db.sqlite")
    assert run.status == "succeeded"
    assert run.outputs == {"numbers": [1, 2, 3], "total": 6}
    assert run.steps["status"].tolist() == ["succeeded", "succeeded"]
    assert "state-succeeded" in run.graph().dot
    assert seen and getattr(seen[0], "run_id", None) == run.run_id


def test_a_failed_run_raises_only_when_asked(tmp_path: Path):
    flow = chronum.Flow("fails")

    @flow.step()
    def boom() -> None:
        raise ValueError("no")

    run = flow.run(db=tmp_path / "db.sqlite")
    assert run.status == "failed"
    with pytest.raises(chronum.errors.RunFailedError, match="boom: ValueError: no"):
        run.raise_for_status()


def test_run_inside_a_running_loop_blocks_on_a_loop_of_its_own(tmp_path: Path):
    flow = chronum.Flow("loop")

    @flow.step()
    def one() -> int:
        return 1

    async def main() -> tuple[str, object]:
        assert flow.run(db=tmp_path / "db.sqlite").outputs["one"] == 1
        run = await flow.arun(db=tmp_path / "db.sqlite")
        return run.status, run.outputs["one"]

    assert asyncio.run(main()) == ("succeeded", 1)


def test_a_notebook_cell_run_again_redefines_its_step():
    namespace: dict[str, object] = {"flow": chronum.Flow("nb"), "__name__": "__main__"}
    cell = "@flow.step()\ndef load():\n    return {}\n"
    for value in (1, 2):
        exec(compile(cell.format(value), "<ipython-input-1>", "exec"), namespace)
    flow = namespace["flow"]
    assert isinstance(flow, chronum.Flow)
    assert flow.step_names == ("load",)
    assert flow.build().step("load").call == "__main__:load"
    assert flow.document()[2]["load"]() == 2  # the latest definition


def test_same_name_twice_in_a_file_is_an_error():
    flow = chronum.Flow("twice")
    for _ in range(2):
        flow.step()(steps.load)
    with pytest.raises(SpecError, match="duplicate step name 'load'"):
        flow.build()
