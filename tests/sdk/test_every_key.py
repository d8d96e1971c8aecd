"""Every step key the YAML accepts, the SDK's verbs accept too, checked by the same validator
and run for real (real subprocesses, real SQLite)."""

from __future__ import annotations

import inspect
import io
import os
import signal
import sys
from pathlib import Path

import pytest
from cli.conftest import pid_alive, wait_for

import chronum
from chronum.api import show_logs
from chronum.errors import SpecError
from chronum.spec._build import FLOW_KEYS, STEP_KEYS

from .conftest import Cli

#: SDK parameters whose YAML key is not their camelCase.
_RENAMED = {"if_": "if", "command": "run", "path": "run", "name": "name"}


def _yaml_keys(method: object) -> set[str]:
    keys = set()
    for name in inspect.signature(method).parameters:  # type: ignore[arg-type]
        if name in ("self", "options"):
            continue
        head, *rest = name.split("_")
        keys.add(_RENAMED.get(name, head + "".join(w.title() for w in rest)))
    return keys


@pytest.mark.parametrize(("verb", "not_for_it"), [
    # a function step has no command, no shell, and nothing to detach
    ("step", {"run", "shell", "detach"}),
    # a command runs in its own process: no function to call, keep or isolate
    ("shell", {"call", "persist", "isolate"}),
    ("script", {"call", "persist", "isolate", "shell"}),
])
def test_every_yaml_step_key_is_a_parameter(verb: str, not_for_it: set[str]) -> None:
    given = _yaml_keys(getattr(chronum.Flow, verb)) | ({"call"} if verb == "step" else set())
    assert sorted(STEP_KEYS - not_for_it - given) == []


def test_every_yaml_flow_key_is_a_parameter() -> None:
    assert sorted(FLOW_KEYS - {"steps"} - _yaml_keys(chronum.Flow.__init__)) == []


def test_a_script_fans_out_caches_and_keeps_its_secret(cli: Cli) -> None:
    cli.env["API_TOKEN"] = "s3cr3t-value"
    cli.write("each.py", """
        import os
        item, region = os.environ["CHRONUM_ITEM"], os.environ.get("CHRONUM_MATRIX_REGION")
        print("token", os.environ.get("API_TOKEN"))
        with open(f"seen-{region or item}", "w") as fh:
            fh.write(item)
    """)
    cli.write("count.py", """
        import os
        with open(os.environ["CHRONUM_OUTPUT"], "a") as fh:
            fh.write("rows=3\\n")
    """)
    cli.write("stamp.py", """
        with open("stamp.txt", "a") as fh:
            fh.write("ran\\n")
    """)
    cli.write("pipeline.py", """
        import chronum

        flow = chronum.Flow("scripts", max_parallel=2)
        flow.script("each", "each.py", foreach=["a", "b"], concurrency=1, secrets="API_TOKEN")
        flow.script("grid", "each.py", matrix={"region": ["eu", "us"]})
        flow.script("stamp", "stamp.py", cache=True, cache_key="v1", cache_for="1h",
                    inputs="stamp.py", outputs="stamp.txt")
        flow.script("count", "count.py")
        flow.shell("report", 'echo "$CHRONUM_OUT_COUNT_ROWS" > report.txt', needs="count",
                   if_="steps.count.outputs.rows > 2")
    """)
    model = chronum.load(cli.cwd / "pipeline.py")
    assert model.step("each").foreach == ("items", ("a", "b"))
    assert model.step("each").secrets == ("API_TOKEN",)
    assert model.step("stamp").cache_for == 3600

    first = cli("run", "pipeline.py")
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(p.name for p in cli.cwd.glob("seen-*")) == [
        "seen-a", "seen-b", "seen-eu", "seen-us"]
    assert (cli.cwd / "report.txt").read_text() == "3\n"
    assert cli("logs", "last", "each[0]").stdout.strip() == "token ***"  # given, masked
    assert cli("logs", "last", "grid[region=eu]").stdout.strip() == "token None"  # not asked

    assert cli("run", "pipeline.py").returncode == 0
    states = {s["step"]: s["status"] for s in cli.json("show", "last")["steps"]}
    assert states["stamp"] == "cached" and states["report"] == "succeeded"
    assert (cli.cwd / "stamp.txt").read_text() == "ran\n"


def test_detach_lets_a_script_s_daemon_outlive_it(cli: Cli) -> None:
    cli.write("daemon.py", f"""
        import subprocess
        proc = subprocess.Popen([{sys.executable!r}, "-c", "import time; time.sleep(60)"],
                                start_new_session=True)
        open("daemon.pid", "w").write(str(proc.pid))
    """)
    cli.write("kept.py", """
        import chronum

        flow = chronum.Flow("detached")
        flow.script("kept", "daemon.py", detach="allow")
    """)
    cli.write("stopped.py", """
        import chronum

        flow = chronum.Flow("stopped")
        flow.script("stopped", "daemon.py", detach="stop")
    """)
    proc = cli("run", "kept.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pid = int((cli.cwd / "daemon.pid").read_text())
    try:
        assert pid_alive(pid)
    finally:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid))

    assert cli("run", "stopped.py").returncode == 0
    pid = int((cli.cwd / "daemon.pid").read_text())
    wait_for(lambda: not pid_alive(pid))  # stopped with its step


def test_a_function_step_gets_secrets_and_isolate_by_name(tmp_path: Path,
                                                          monkeypatch) -> None:
    monkeypatch.setenv("API_TOKEN", "s3cr3t-value")
    flow = chronum.Flow("calls", secrets=["API_TOKEN"])

    @flow.step(isolate="process")
    def child(ctx) -> int:
        print("token", ctx.env["API_TOKEN"], "pid", os.getpid())
        return os.getpid()

    @flow.step(isolate="thread", options={})
    def here() -> int:
        return os.getpid()

    db = tmp_path / "runs.db"
    run = flow.run(db=db)
    assert run.status == "succeeded", run.errors
    assert run.outputs["here"] == os.getpid() != run.outputs["child"]
    out = io.StringIO()
    show_logs(run.run_id, "child", db=db, out=out)
    assert out.getvalue().startswith("token *** pid ")


def test_the_flow_s_dask_address_and_secrets_are_the_yaml_keys() -> None:
    flow = chronum.Flow("d", dask="tcp://127.0.0.1:8786", secrets="API_TOKEN")
    flow.shell("a", "true")
    model = flow.build()
    assert model.env["CHRONUM_DASK_ADDRESS"] == "tcp://127.0.0.1:8786"
    assert model.secrets == ("API_TOKEN",)
    assert chronum.Flow("m", dask={"address": "tcp://h:1"}).document()[1]["dask"] == {
        "address": "tcp://h:1"}


def _line() -> int:
    return sys._getframe(1).f_lineno


def test_the_sdk_gets_the_yaml_s_errors_at_the_call() -> None:
    flow = chronum.Flow("bad")
    here = _line()
    flow.script("a", "a.py", detach="sometimes")
    flow.shell("b", "true", options={"image": "alpine"})
    flow.script("c", "c.py", foreach={"parm": "x"})
    flow.shell("d", "true", secrets=["NOT A NAME"])
    with pytest.raises(SpecError) as info:
        flow.build()
    problems = [(p.location.line - here, p.location.path, p.message, p.hint)
                for p in info.value.problems]
    assert problems[0][:3] == (1, "a.detach", "expected 'allow' or 'stop', got 'sometimes'")
    assert problems[1][:2] == (2, "b")
    assert problems[1][3] == "'image' is for the docker executor: add 'executor: docker'"
    assert problems[2][:2] == (3, "c.foreach")
    assert problems[3][:3] == (4, "d.secrets[0]", "invalid environment variable name "
                                               "'NOT A NAME'")
    assert len(problems) == 4
