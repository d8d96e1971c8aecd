"""The docker executor against a real dockerd (see conftest.py) and a locally imported image."""

from __future__ import annotations

import asyncio
import os
import textwrap
from pathlib import Path

import pytest
from docker_engine import Engine

import chronum
from chronum.executors.base import StepContext
from chronum.executors.docker import DockerExecutor, container_name
from chronum.model import Flow, Step
from chronum.testing import CHECKS, check_executor, shell_step


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, stream: str, line: str) -> None:
        self.lines.append((stream, line))


def _ctx(engine: Engine, folder: Path, log: _Log, *, env: dict[str, str] | None = None,
         step: Step | None = None) -> StepContext:
    flow = Flow(name="d", steps=(step,) if step else (), base_dir=folder, env={"STAGE": "dev"})
    base = {**engine.env(), "STAGE": "dev", "CHRONUM_RUN_ID": "r1", "HOST_ONLY": "secret"}
    return StepContext(run_id="r1", flow=flow, attempt=1, env={**base, **(env or {})},
                       cwd=folder, params={}, inputs={}, log=log, grace=1.0)


def _step(run: str, **options) -> Step:
    return Step(name="s", executor="docker", run=run,
                options={"image": "localhost/busybox:test", **options})


def _run(engine: Engine, folder: Path, step: Step, **kw):
    log = _Log()
    result = asyncio.run(DockerExecutor().execute(step, _ctx(engine, folder, log, step=step, **kw)))
    return result, log


def test_docker_keeps_the_executor_contract(engine: Engine, tmp_path: Path):
    def leftovers(run_id: str) -> list[str]:
        return [c for c in engine.containers() if run_id in c]

    passed = check_executor(DockerExecutor, make_step=shell_step("docker", image=engine.image),
                            env=engine.env(), folder=tmp_path, leftovers=leftovers)
    assert passed == list(CHECKS)
    assert engine.containers() == []


@pytest.mark.parametrize("code", [0, 1, 42])
def test_exit_codes_propagate(engine: Engine, tmp_path: Path, code: int):
    result, _ = _run(engine, tmp_path, _step(f"exit {code}"))
    assert result.exit_code == code


def test_env_folder_and_workdir(engine: Engine, tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data.txt").write_text("from the host\n")
    step = Step(name="s", executor="docker", cwd="sub", env={"COLOR": "blue"},
                run='pwd; cat data.txt; echo "$STAGE $COLOR $CHRONUM_RUN_ID [$HOST_ONLY]"; '
                    'echo made > out.txt',
                options={"image": engine.image, "workdir": "/flow"})
    result, log = _run(engine, tmp_path, step, env={"COLOR": "blue"})
    assert result.exit_code == 0, log.lines
    assert [line for s, line in log.lines if s == "stdout"] == [
        "/flow/sub", "from the host", "dev blue r1 []"]
    assert (tmp_path / "sub" / "out.txt").read_text() == "made\n"


def test_docker_args_are_passed_through(engine: Engine, tmp_path: Path):
    result, log = _run(engine, tmp_path, _step("hostname", dockerArgs=["--hostname", "box7"]))
    assert (result.exit_code, log.lines) == (0, [("stdout", "box7")])


def test_mount_false_leaves_the_flow_folder_out(engine: Engine, tmp_path: Path):
    (tmp_path / "here.txt").write_text("x")
    result, _ = _run(engine, tmp_path, _step("ls /workspace/here.txt", mount=False,
                                               dockerArgs=["-w", "/"]))
    assert result.exit_code != 0


def test_a_missing_image_is_a_clear_failure(engine: Engine, tmp_path: Path):
    step = Step(name="s", executor="docker", run="true",
                options={"image": "localhost/nothing:here", "pull": "never"})
    result, _ = _run(engine, tmp_path, step)
    assert result.exit_code == 125
    assert result.error == ("docker could not run the container: Error response from daemon: "
                            "No such image: localhost/nothing:here")


def test_pull_missing_uses_a_local_image_without_a_registry(engine: Engine, tmp_path: Path):
    # The default policy; no registry is reachable, so any pull attempt would fail the step.
    result, log = _run(engine, tmp_path, Step(name="s", executor="docker", run="echo local",
                                              options={"image": engine.image}))
    assert (result.exit_code, log.lines) == (0, [("stdout", "local")])


def test_an_unreachable_engine_is_a_clear_failure(engine: Engine, tmp_path: Path):
    result, _ = _run(engine, tmp_path, _step("true"),
                     env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    assert result.exit_code == 125
    assert result.error is not None
    assert result.error.startswith("docker could not run the container: Cannot connect to the "
                                   f"Docker daemon at unix://{tmp_path}/no.sock")


def test_a_missing_docker_cli_is_a_clear_failure(engine: Engine, tmp_path: Path):
    result, _ = _run(engine, tmp_path, _step("true"), env={"PATH": str(tmp_path)})
    log = _Log()
    step = _step("true")
    result = asyncio.run(DockerExecutor(docker="no-such-docker").execute(
        step, _ctx(engine, tmp_path, log, step=step)))
    assert result.exit_code == 127
    assert result.error == "docker CLI not found: no-such-docker (is docker or podman installed?)"


@pytest.mark.parametrize(("options", "message"), [
    ({}, "a docker step needs 'image:'"),
    ({"image": "x", "pull": "sometimes"}, "pull: must be one of missing, always, never"),
    ({"image": "x", "dockerArgs": "--rm"}, "dockerArgs: must be a list of strings"),
], ids=["no-image", "bad-pull", "bad-args"])
def test_bad_options_fail_the_step_before_docker_runs(tmp_path: Path, options, message):
    log = _Log()
    step = Step(name="s", executor="docker", run="true", options=options)
    ctx = StepContext(run_id="r", flow=Flow(name="f", steps=(step,), base_dir=tmp_path),
                      attempt=1, env=dict(os.environ), cwd=tmp_path, params={}, inputs={},
                      log=log, grace=1.0)
    result = asyncio.run(DockerExecutor().execute(step, ctx))
    assert result.exit_code == 2
    assert result.error is not None and result.error.startswith(message)


def test_container_names_are_findable():
    assert container_name("ab12", "build.x", 2) == "chronum-ab12-build.x-2"


def test_a_flow_with_a_timeout_leaves_no_container(engine: Engine, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    (tmp_path / "flow.yaml").write_text(textwrap.dedent(f"""
        name: boxed
        maxParallel: 2
        steps:
          - name: hello
            executor: docker
            image: {engine.image}
            run: echo "hello $CHRONUM_STEP"
          - name: slow
            executor: docker
            image: {engine.image}
            pull: never
            run: echo started; sleep 300
            timeout: 1
    """))
    run = chronum.run(tmp_path / "flow.yaml", db=tmp_path / "state.db", grace=1.0)
    assert run.status == "failed"
    steps = chronum.steps(db=tmp_path / "state.db").set_index("step")
    assert steps.loc["hello", "status"] == "succeeded"
    assert (steps.loc["slow", "status"], steps.loc["slow", "exit_code"]) == ("failed", 124)
    assert engine.containers() == []
