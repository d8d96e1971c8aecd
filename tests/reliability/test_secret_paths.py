"""Secrets at the edges: a secret straddling the 64 KiB line cut, output of in-process steps that
bypasses ``sys.stdout``, step-level ``secrets:`` limits, and params written to the store.

Every test runs the real thing (a ``chronum run`` subprocess, real steps) and then reads every
byte Chronum wrote (the SQLite file and its WAL, the log files, ``--events-jsonl``) and the
runner's own terminal output, looking for the secret or a recognisable half of it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chronum.engine.masking import MASK, Masker
from chronum.engine.runner import run_environment, step_environment
from chronum.executors.process import MAX_LINE
from chronum.spec import loads

SECRET = "hunter2-Zq9-TOKEN-4f1c"
#: Halves of the secret long enough that they cannot appear by chance.
PIECES = (SECRET, SECRET[:11], SECRET[11:])


def _leaks(root: Path, *texts: str) -> list[str]:
    """Where any piece of the secret appears: files under ``root``, then the given texts."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.relative_to(root)}: {p!r}" for p in PIECES if p.encode() in data]
    for i, text in enumerate(texts):
        found += [f"output {i}: {p!r}" for p in PIECES if p in text]
    return found


def _cli(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chronum", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "API_TOKEN": SECRET, "CHRONUM_DB": str(tmp_path / "db" / "c.db"),
           **extra}
    return env


def test_split_holds_back_what_may_begin_a_secret() -> None:
    mask = Masker(["abcdef"])
    # 7 = the longest masked form (the secret's base64, 8 characters) less one
    assert mask.split("xxxxxxxxab") == ("xxx", "xxxxxab")
    assert mask.split("xxxxabcdefyy") == ("xxxxabcdef", "yy")  # straddles: taken whole
    assert mask.split("abc") == ("", "abc")
    assert Masker([]).split("abc") == ("abc", "")


def test_a_step_gets_only_the_secrets_it_asks_for() -> None:
    flow = loads(textwrap.dedent("""
        name: f
        secrets: [SHARED]
        steps:
          - name: deploy
            run: "true"
            secrets: [DEPLOY_TOKEN]
          - name: test
            run: "true"
    """), filename="f.yaml")
    base = {"SHARED": "s-value", "DEPLOY_TOKEN": "d-value", "HOME": "/h"}
    run_env = run_environment(flow, "r1", {}, base)
    assert "DEPLOY_TOKEN" not in run_env and "SHARED" not in run_env and run_env["HOME"] == "/h"
    deploy = step_environment(run_env, flow.steps[0], 1, {"SHARED": "s-value",
                                                          "DEPLOY_TOKEN": "d-value"})
    test = step_environment(run_env, flow.steps[1], 1, {"SHARED": "s-value"})
    assert deploy["DEPLOY_TOKEN"] == "d-value" and deploy["SHARED"] == "s-value"
    assert "DEPLOY_TOKEN" not in test and test["SHARED"] == "s-value"


def _cut_line(before: int) -> str:
    """Python code printing a line whose secret straddles the cut at ``MAX_LINE`` bytes."""
    return f"print('x' * {before} + os.environ['API_TOKEN'] + 'y' * 40)"


def test_a_secret_across_the_line_cut_is_masked_everywhere(tmp_path: Path) -> None:
    before = MAX_LINE - 9  # the cut falls inside the secret
    (tmp_path / "cut.py").write_text(textwrap.dedent(f"""
        import os, sys

        def printed():
            {_cut_line(before)}

        def unended():
            sys.stdout.write('x' * {before} + os.environ['API_TOKEN'] + 'z' * {MAX_LINE})
            sys.stdout.write('\\n')
    """))
    (tmp_path / "script.py").write_text(f"import os\n{_cut_line(before)}\n")
    (tmp_path / "f.yaml").write_text(textwrap.dedent(f"""
        name: cut
        secrets: [API_TOKEN]
        steps:
          - name: shell
            run: {sys.executable} -c "import os; {_cut_line(before)}"
          - name: script
            executor: python
            run: script.py
          - name: printed
            executor: python
            call: cut:printed
          - name: unended
            executor: python
            call: cut:unended
    """))
    env = _env(tmp_path)
    ran = _cli(tmp_path, env, "run", "f.yaml", "--events-jsonl", "events.jsonl")
    assert ran.returncode == 0, ran.stderr
    shown = [_cli(tmp_path, env, "logs", "last", step) for step in
             ("shell", "script", "printed", "unended")]
    for proc in shown:
        assert MASK in proc.stdout
        assert "x" * 100 in proc.stdout  # the line itself is there, around the mask
    assert _leaks(tmp_path, ran.stdout, ran.stderr, *(p.stdout for p in shown)) == []


def test_a_secret_given_as_a_param_is_not_stored(tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text(textwrap.dedent("""
        name: p
        secrets: [API_TOKEN]
        params: {token: none}
        steps:
          - name: a
            run: test "$CHRONUM_PARAM_TOKEN" = "$API_TOKEN"
          - name: b
            run: exit 3
            needs: [a]
    """))
    env = _env(tmp_path)
    ran = _cli(tmp_path, env, "run", "f.yaml", "-p", f"token={SECRET}")
    assert ran.returncode == 1, ran.stderr
    assert "[a] succeeded" in ran.stdout, ran.stdout  # the step had the real value
    with sqlite3.connect(tmp_path / "db" / "c.db") as conn:
        (params,) = conn.execute("SELECT params FROM runs").fetchone()
    assert json.loads(params) == {"token": MASK}
    assert _leaks(tmp_path, ran.stdout, ran.stderr) == []
    resumed = _cli(tmp_path, env, "resume", "last")
    assert "secret" in resumed.stderr and "token" in resumed.stderr
    assert "Traceback" not in resumed.stderr


def test_a_step_without_the_secret_does_not_inherit_it(tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text(textwrap.dedent("""
        name: limits
        steps:
          - name: deploy
            run: test -n "$API_TOKEN"
            secrets: [API_TOKEN]
          - name: test
            run: test -z "${API_TOKEN:-}"
    """))
    ran = _cli(tmp_path, _env(tmp_path), "run", "f.yaml")
    assert ran.returncode == 0, ran.stdout + ran.stderr


LEAKY = """
import logging, os, subprocess, sys, threading, time

_handler = logging.StreamHandler(sys.__stderr__)  # as if made before Chronum was imported
_log = logging.getLogger("leaky")
_log.addHandler(_handler)
_log.propagate = False

def thread():
    t = threading.Thread(target=lambda: print("thread", os.environ["API_TOKEN"]))
    t.start()
    t.join()

def handler():
    _log.warning("handler %s", os.environ["API_TOKEN"])

def child():
    subprocess.run([sys.executable, "-c",
                    "import os; print('child', os.environ['API_TOKEN'])"], check=True)

def oswrite():
    os.write(1, ("fd1 " + os.environ["API_TOKEN"] + "\\n").encode())
    os.write(2, ("fd2 " + os.environ["API_TOKEN"] + "\\n").encode())

def later():
    def speak():
        time.sleep(0.3)
        print("later", os.environ["API_TOKEN"])
    threading.Thread(target=speak, daemon=True).start()
"""


def _leaky_flow(tmp_path: Path) -> None:
    (tmp_path / "leaky.py").write_text(LEAKY)
    (tmp_path / "f.yaml").write_text(textwrap.dedent("""
        name: paths
        secrets: [API_TOKEN]
        maxParallel: 1
        steps:
          - {name: thread, executor: python, call: "leaky:thread"}
          - {name: handler, executor: python, call: "leaky:handler", needs: [thread]}
          - {name: child, executor: python, call: "leaky:child", needs: [handler]}
          - {name: oswrite, executor: python, call: "leaky:oswrite", needs: [child]}
          - {name: later, executor: python, call: "leaky:later", needs: [oswrite]}
          - {name: wait, run: sleep 1, needs: [later]}
    """))


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_output_that_bypasses_sys_stdout_is_captured_and_masked(
        tmp_path: Path, fmt: str) -> None:
    _leaky_flow(tmp_path)
    env = _env(tmp_path)
    ran = _cli(tmp_path, env, "run", "f.yaml", "--events-jsonl", "events.jsonl",
               "--format", fmt)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    logs = {step: _cli(tmp_path, env, "logs", "last", step).stdout
            for step in ("thread", "handler", "child", "oswrite")}
    assert f"thread {MASK}" in logs["thread"]
    assert f"handler {MASK}" in logs["handler"]
    assert f"child {MASK}" in logs["child"]
    assert f"fd1 {MASK}" in logs["oswrite"] and f"fd2 {MASK}" in logs["oswrite"]
    run_logs = list((tmp_path / "db" / "logs").glob("*/(run).log"))
    assert len(run_logs) == 1
    assert f"later {MASK}" in run_logs[0].read_text()  # no in-process step was running
    assert f"later {MASK}" in ran.stdout  # and the terminal saw it, masked
    assert _leaks(tmp_path, ran.stdout, ran.stderr, *logs.values()) == []


def test_the_reliability_row_counts_no_unmasked_byte(tmp_path: Path) -> None:
    from reliability.secrets import check_secret_paths

    figures = check_secret_paths(tmp_path, runs=1, kernel=True)
    assert [f.figure for f in figures] == ["0", "0"]
