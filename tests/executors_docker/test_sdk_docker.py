"""``flow.shell(..., executor="docker", options={...})``: the SDK reaches the docker executor's
own keys as YAML does, against the real dockerd of conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from docker_engine import Engine

import chronum
from chronum.errors import SpecError


def test_a_docker_step_written_in_python(engine: Engine, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    flow = chronum.Flow("boxed-sdk")
    box = flow.shell("box", 'echo "rows=$((2 + 1))" >> "$CHRONUM_OUTPUT"; hostname',
                     executor="docker",
                     options={"image": engine.image, "pull": "never", "mount": False,
                              "docker_args": ["--hostname", "sdkbox"]})

    @flow.step(needs=box)
    def rows(box: dict[str, str]) -> int:
        return int(box["rows"])

    model = flow.build()
    assert model.step("box").executor == "docker"
    assert model.step("box").options["dockerArgs"] == ["--hostname", "sdkbox"]
    run = flow.run(db=tmp_path / "runs.db", grace=1.0)
    assert run.status == "succeeded", run.errors
    assert run.outputs["rows"] == 3
    assert engine.containers() == []


def test_a_docker_key_without_the_executor_is_refused_at_the_call():
    flow = chronum.Flow("bad")
    flow.shell("box", "true", options={"image": "alpine"})
    with pytest.raises(SpecError) as info:
        flow.build()
    (problem,) = info.value.problems
    assert problem.location.path == "box" and "unknown key 'image'" in problem.message
