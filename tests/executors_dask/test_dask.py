"""The dask executor on real clusters: LocalCluster with threads and with processes, and a
separately started scheduler + workers (conftest.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import chronum
from chronum.executors import ExecutorRegistry
from chronum.executors.base import StepContext
from chronum.executors.dask_executor import DaskExecutor
from chronum.model import Flow, Step
from chronum.testing import CHECKS, check_executor, python_script_step

MODULE = textwrap.dedent("""\
    import time

    def make():
        print("making 20")
        return 20

    def double(make):
        return {"kind": type(make).__name__, "value": make * 2}

    def boom(make):
        raise ValueError(f"bad value {make}")

    def slow():
        time.sleep(4)  # a cancelled thread cannot be stopped: it holds its worker that long
""")


def _flow(folder: Path, text: str) -> Path:
    (folder / "steps_mod.py").write_text(MODULE)
    (folder / "flow.yaml").write_text(textwrap.dedent(text))
    return folder / "flow.yaml"


FLOW = """\
    name: remote
    maxParallel: 4
    steps:
      - name: make
        executor: dask
        call: steps_mod:make
      - name: double
        executor: dask
        call: steps_mod:double
        needs: [make]
      - name: boom
        executor: dask
        call: steps_mod:boom
        needs: [make]
"""


def _registry(**kw) -> ExecutorRegistry:
    registry = ExecutorRegistry(entry_points=False)
    registry.register("dask", lambda: DaskExecutor(**kw))
    return registry


def _log(db: Path, step: str) -> str:
    return next(db.parent.joinpath("logs").rglob(f"{step}.log")).read_text()


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_a_flow_of_local_module_functions_runs_on_a_local_cluster(tmp_path: Path, processes):
    # With processes, workers cannot import steps_mod: the function must travel by value.
    db = tmp_path / "state.db"
    run = chronum.run(_flow(tmp_path, FLOW), db=db, executors=_registry(processes=processes))
    assert run.status == "failed"
    assert run.outputs == {"make": 20, "double": {"kind": "int", "value": 40}}
    steps = chronum.steps(db=db).set_index("step")["status"].to_dict()
    assert steps == {"make": "succeeded", "double": "succeeded", "boom": "failed"}
    assert _log(db, "make") == "making 20\n"
    boom = _log(db, "boom")
    assert boom.startswith("Traceback (most recent call last):\n")
    # the frame of the function sent by value names its file and shows its line, as a
    # python step's traceback does (cloudpickle calls that code "<dynamic-code>")
    assert f'File "{tmp_path / "steps_mod.py"}", line ' in boom, boom
    assert 'raise ValueError(f"bad value {make}")' in boom, boom
    assert "<dynamic-code>" not in boom
    assert boom.endswith("ValueError: bad value 40\n".replace("40", "20"))


def test_values_between_dask_steps_are_futures(tmp_path: Path, scheduler_address: str):
    from distributed import Future

    async def go() -> tuple[object, object]:
        executor = DaskExecutor(scheduler_address)
        (tmp_path / "steps_mod.py").write_text(MODULE)
        make = Step(name="make", executor="dask", call="steps_mod:make")
        double = Step(name="double", executor="dask", call="steps_mod:double", needs=("make",))
        flow = Flow(name="f", steps=(make, double), base_dir=tmp_path)

        def ctx(inputs: dict) -> StepContext:
            return StepContext(run_id="r", flow=flow, attempt=1, env=dict(os.environ),
                               cwd=tmp_path, params={}, inputs=inputs, log=lambda s, x: None)

        first = await executor.execute(make, ctx({}))
        second = await executor.execute(double, ctx({"make": first.value}))
        outputs = {"make": first.value, "double": second.value}
        kinds = (type(first.value), type(second.value))
        await executor.finish_run(outputs)
        return kinds, outputs

    kinds, outputs = asyncio.run(go())
    assert kinds == (Future, Future)
    # The worker got the int itself: the future was resolved on the cluster.
    assert outputs == {"make": 20, "double": {"kind": "int", "value": 40}}


def test_a_timeout_cancels_the_future(tmp_path: Path, scheduler_address: str):
    from distributed import Client

    flow = _flow(tmp_path, """\
        name: late
        steps:
          - name: slow
            executor: dask
            call: steps_mod:slow
            timeout: 1
    """)
    db = tmp_path / "state.db"
    run = chronum.run(flow, db=db, executors=_registry(address=scheduler_address))
    assert run.status == "failed"
    assert chronum.steps(db=db)["exit_code"].tolist() == [124]
    with Client(scheduler_address) as client:
        left = client.run_on_scheduler(
            lambda dask_scheduler: [k for k in dask_scheduler.tasks if run.run_id in str(k)])
    assert left == []


def test_the_contract_on_a_threaded_local_cluster(tmp_path: Path):
    passed = check_executor(lambda: DaskExecutor(processes=False), folder=tmp_path,
                            make_step=python_script_step("dask"), grace=0.5)
    assert passed == list(CHECKS)


def test_the_contract_on_a_separate_scheduler(tmp_path: Path, scheduler_address: str):
    passed = check_executor(lambda: DaskExecutor(scheduler_address), folder=tmp_path,
                            make_step=python_script_step("dask"), grace=0.5)
    assert passed == list(CHECKS)


def test_cli_executor_dask_sends_python_steps_to_the_cluster(tmp_path: Path,
                                                             scheduler_address: str):
    flow = _flow(tmp_path, """\
        name: unchanged
        steps:
          - name: make
            executor: python
            call: steps_mod:make
          - name: where
            executor: python
            call: steps_mod:double
            needs: [make]
          - name: shell
            run: echo still a shell step
    """)
    env = {**os.environ, "CHRONUM_DASK_ADDRESS": scheduler_address}
    out = subprocess.run([sys.executable, "-m", "chronum", "run", str(flow), "--executor", "dask",
                          "--db", str(tmp_path / "state.db"), "--format", "json"],
                         capture_output=True, text=True, timeout=90, env=env)
    assert out.returncode == 0, out.stderr
    events = chronum.events(chronum.history(db=tmp_path / "state.db")["run_id"][0],
                            db=tmp_path / "state.db")
    started = events[events["kind"] == "step.started"]
    assert [d["executor"] for d in started["data"]] == ["dask", "dask", "shell"]


def test_a_missing_address_is_a_clear_failure(tmp_path: Path):
    (tmp_path / "steps_mod.py").write_text(MODULE)
    flow = _flow(tmp_path, """\
        name: nowhere
        env: {CHRONUM_DASK_ADDRESS: "tcp://127.0.0.1:9"}
        steps:
          - name: make
            executor: dask
            call: steps_mod:make
    """)
    db = tmp_path / "state.db"
    run = chronum.run(flow, db=db, executors=_registry(connect_timeout=1))
    assert run.status == "failed"
    assert "127.0.0.1:9" in chronum.steps(db=db)["reason"][0]


def test_the_flow_names_its_cluster(tmp_path: Path, scheduler_address: str):
    (tmp_path / "where_mod.py").write_text(textwrap.dedent("""\
        def scheduler():
            from distributed import get_worker
            return get_worker().scheduler.address
    """))
    flow = _flow(tmp_path, f"""\
        name: placed
        dask: {{address: "{scheduler_address}"}}
        steps:
          - name: where
            executor: dask
            call: where_mod:scheduler
    """)
    run = chronum.run(flow, db=tmp_path / "state.db")
    assert run.status == "succeeded", run.errors
    assert run.outputs["where"] == scheduler_address


def test_validate_explains_a_missing_dask(tmp_path: Path):
    # an interpreter in which dask, distributed and cloudpickle cannot be found
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "sitecustomize.py").write_text(textwrap.dedent("""\
        import importlib.machinery

        _find = importlib.machinery.PathFinder.find_spec
        _HIDDEN = {"dask", "distributed", "cloudpickle"}

        def _find_spec(name, path=None, target=None):
            if name.partition(".")[0] in _HIDDEN:
                return None
            return _find(name, path, target)

        importlib.machinery.PathFinder.find_spec = staticmethod(_find_spec)
    """))
    flow = _flow(tmp_path, """\
        name: needs-dask
        steps:
          - name: make
            executor: dask
            call: steps_mod:make
    """)
    env = {**os.environ, "PYTHONPATH": str(hidden)}
    out = subprocess.run([sys.executable, "-m", "chronum", "validate", str(flow)],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 2
    assert "pip install 'chronum[dask]'" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_function_asking_for_the_step_context_is_refused(tmp_path: Path):
    (tmp_path / "ctx_mod.py").write_text("def needs_ctx(ctx):\n    return ctx.run_id\n")
    flow = _flow(tmp_path, """\
        name: contextual
        steps:
          - name: here
            executor: dask
            call: ctx_mod:needs_ctx
    """)
    db = tmp_path / "state.db"
    run = chronum.run(flow, db=db, executors=_registry())
    assert run.status == "failed"
    assert ("parameter 'ctx': a step that runs on a dask worker has no step context"
            in chronum.steps(db=db)["reason"][0])


def test_a_failing_dask_step_prints_its_error_once_at_the_terminal(tmp_path: Path):
    """The step's log shows the exception; the local cluster's worker does not print its own
    "Compute Failed" report of the same exception beside it."""
    flow = _flow(tmp_path, FLOW)
    out = subprocess.run([sys.executable, "-m", "chronum", "run", str(flow), "--db",
                          str(tmp_path / "state.db")], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    both = out.stdout + out.stderr
    assert "Compute Failed" not in both, both
    assert both.count("ValueError: bad value 20") == 2, both  # the log's line, the summary's
