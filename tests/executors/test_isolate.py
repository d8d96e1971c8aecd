"""``isolate: process``: a ``call:`` step in a child process, through ``chronum.run`` (real child
processes, real SQLite); ``ctx.check()`` in a thread call; the spec key and the SDK keyword."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

import chronum
from chronum import api
from chronum.errors import SpecError
from chronum.spec import loads

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")


def _cell_function(source: str, name: str) -> Any:
    """A function as a notebook cell makes one: its module cannot be imported, so cloudpickle
    sends it by value."""
    scope: dict[str, Any] = {"__name__": "notebook_cell"}
    exec(compile(source, "<cell>", "exec"), scope)
    return scope[name]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return False
    return raw[raw.rfind(b")") + 2:].split()[0] not in (b"Z", b"X")


def _flow(body: str, tmp_path: Path) -> chronum.model.Flow:
    return loads(body, filename=str(tmp_path / "flow.yaml"))


def _logs(run_id: str, db: Path, step: str) -> str:
    with open(os.devnull, "w") as err:
        import io

        out = io.StringIO()
        api.show_logs(run_id, step, db=db, out=out, err=err)
    return out.getvalue()


def test_the_call_runs_in_a_child_and_its_value_print_and_logging_come_back(tmp_path):
    work = _cell_function(
        "import logging, os\n"
        "def work(ctx, load):\n"
        "    print('rows', len(load))\n"
        "    logging.getLogger('clean').info('dropped %d', 1)\n"
        "    return {'pid': os.getpid(), 'run': ctx.run_id, 'cancelled': ctx.cancelled,\n"
        "            'rows': load[1:]}\n", "work")
    flow = _flow("name: iso\nsteps:\n  - name: load\n    executor: python\n    call: load\n"
                 "  - name: work\n    executor: python\n    call: work\n    needs: [load]\n"
                 "    isolate: process\n", tmp_path)
    db = tmp_path / "c.db"
    run = chronum.run(flow, db=db, namespace={"work": work, "load": lambda: [1, 2, 3]})
    assert run.status == "succeeded", run.errors
    value = run.outputs["work"]
    assert value["pid"] != os.getpid()
    assert value["run"] == run.run_id and value["cancelled"] is False
    assert value["rows"] == [2, 3]
    log = _logs(run.run_id, db, "work")
    assert "rows 3" in log and "INFO:clean:dropped 1" in log


def test_the_child_ctx_env_is_the_step_environment_secrets_included(tmp_path, monkeypatch):
    # The file that carries the call to the child holds no environment (a secret in it would
    # outlive a killed runner); the child's ctx.env is its own environment, the step's.
    monkeypatch.setenv("ISO_TOKEN", "s3cr3t-value")
    env_of = _cell_function(
        "def env_of(ctx):\n"
        "    return {k: ctx.env.get(k) for k in ('ISO_TOKEN', 'FROM_FLOW', 'CHRONUM_STEP')}\n",
        "env_of")
    flow = _flow("name: iso\nsecrets: [ISO_TOKEN]\nenv: {FROM_FLOW: hello}\nsteps:\n"
                 "  - name: env_of\n    executor: python\n    call: env_of\n"
                 "    isolate: process\n", tmp_path)
    run = chronum.run(flow, db=tmp_path / "c.db", namespace={"env_of": env_of})
    assert run.status == "succeeded", run.errors
    assert run.outputs["env_of"] == {"ISO_TOKEN": "s3cr3t-value", "FROM_FLOW": "hello",
                                     "CHRONUM_STEP": "env_of"}


def test_an_exception_in_the_child_fails_the_step_with_its_traceback(tmp_path):
    boom = _cell_function("def boom():\n    raise ValueError('bad input')\n", "boom")
    flow = _flow("name: iso\nsteps:\n  - name: boom\n    executor: python\n    call: boom\n"
                 "    isolate: process\n", tmp_path)
    db = tmp_path / "c.db"
    run = chronum.run(flow, db=db, namespace={"boom": boom})
    assert run.status == "failed"
    assert run.errors == {"boom": "ValueError: bad input"}
    log = _logs(run.run_id, db, "boom")
    assert "Traceback" in log and "line 2, in boom" in log


def test_a_timed_out_isolated_call_is_stopped_at_once(tmp_path):
    pid_file = tmp_path / "pid"
    sleepy = _cell_function(
        "import os, time\n"
        f"def sleepy():\n    open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "    time.sleep(60)\n", "sleepy")
    flow = _flow("name: iso\nsteps:\n  - name: sleepy\n    executor: python\n    call: sleepy\n"
                 "    isolate: process\n    timeout: 2\n", tmp_path)
    started = time.monotonic()
    run = chronum.run(flow, db=tmp_path / "c.db", namespace={"sleepy": sleepy})
    took = time.monotonic() - started
    assert run.status == "failed" and run.errors == {"sleepy": "timed out after 2s"}
    assert took < 10
    assert not _alive(int(pid_file.read_text()))
    assert run.still_running == ()


def test_ctx_check_stops_a_thread_call_at_its_timeout(tmp_path):
    stopped = tmp_path / "stopped"
    loop = _cell_function(
        "import pathlib, time\nfrom chronum.errors import StepCancelledError\n"
        "def loop(ctx):\n    try:\n        while True:\n"
        "            ctx.check()\n            time.sleep(0.01)\n"
        f"    except StepCancelledError as exc:\n"
        f"        pathlib.Path({str(stopped)!r}).write_text(str(exc))\n        raise\n", "loop")
    flow = _flow("name: checks\nsteps:\n  - name: loop\n    executor: python\n    call: loop\n"
                 "    timeout: 0.5\n", tmp_path)
    run = chronum.run(flow, db=tmp_path / "c.db", namespace={"loop": loop})
    assert run.status == "failed"
    deadline = time.monotonic() + 5
    while not stopped.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stopped.read_text() == "step 'loop' was cancelled; stopped at ctx.check()"


@pytest.mark.parametrize(("step", "message"), [
    ("    run: echo hi\n    isolate: process\n",
     "flow.yaml:5:14: steps[0].isolate: 'isolate' is for steps with 'call'"),
    ("    executor: python\n    call: f\n    isolate: fork\n",
     "flow.yaml:6:14: steps[0].isolate: expected 'process' or 'thread', got 'fork'"),
])
def test_isolate_errors_point_at_the_key(tmp_path, step, message):
    with pytest.raises(SpecError) as err:
        _flow("name: iso\nsteps:\n  - name: s\n" + step, tmp_path)
    assert message in str(err.value)


def test_the_sdk_keyword_sets_the_key(tmp_path):
    flow = chronum.Flow("sdk-iso")

    @flow.step(isolate=True)
    def one() -> int:
        return os.getpid()

    @flow.step()
    def two(one: int) -> int:
        return one

    model = flow.build()
    assert model.step("one").options.get("isolate") == "process"
    assert "isolate" not in model.step("two").options
    run = flow.run(db=tmp_path / "c.db")
    assert run.status == "succeeded", run.errors
    assert run.outputs["two"] != os.getpid()
