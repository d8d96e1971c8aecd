"""Resume runs exactly the rest, once, of the flow the run ran (issue 11, A1-A3)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.cli.conftest import Chronum

CHAIN = """
name: chain
steps:
  - name: a
    executor: python
    call: steps:a
  - name: b
    executor: python
    call: steps:b
    needs: [a]
  - name: c
    executor: python
    call: steps:c
    needs: [b]
"""

STEPS = """
from pathlib import Path


def _ran(name):
    with open("ran.txt", "a") as f:
        f.write(name + "\\n")


def a():
    _ran("a")
    return 1


def b():
    _ran("b")
    return 2


def c():
    _ran("c")
    if not Path("fixed").exists():
        raise SystemExit(3)
"""


def _ran(chronum: Chronum) -> list[str]:
    path = chronum.cwd / "ran.txt"
    return path.read_text().split() if path.exists() else []


def _statuses(chronum: Chronum, run: str = "last") -> dict[str, str]:
    return {s["step"]: s["status"] for s in chronum.json("show", run)["steps"]}


def test_a_chain_of_functions_without_parameters_resumes_only_the_failed_step(chronum: Chronum):
    chronum.write("flow.yaml", CHAIN)
    chronum.write("steps.py", STEPS)
    first = chronum("run", "flow.yaml", "-q")
    assert first.returncode == 1, first.stderr
    assert _ran(chronum) == ["a", "b", "c"]
    (chronum.cwd / "fixed").touch()
    resumed = chronum("resume", "last", "-q")  # another process: no values in memory
    assert resumed.returncode == 0, resumed.stderr
    assert _ran(chronum) == ["a", "b", "c", "c"]
    assert _statuses(chronum) == {"a": "cached", "b": "cached", "c": "succeeded"}


def test_a_step_that_takes_a_value_that_is_gone_runs_its_upstream_again(chronum: Chronum):
    chronum.write("flow.yaml", CHAIN)
    chronum.write("steps.py", STEPS.replace("def c():", "def c(b):"))
    assert chronum("run", "flow.yaml", "-q").returncode == 1
    (chronum.cwd / "fixed").touch()
    assert chronum("resume", "last", "-q").returncode == 0
    assert _ran(chronum) == ["a", "b", "c", "b", "c"]  # b's value was not kept; a's is not taken
    rows = chronum.json("show", "last")["steps"]
    assert rows[1]["reason"] == "re-run: its value is needed by 'c' and was not kept"


def test_a_function_that_cannot_be_imported_is_assumed_to_take_the_value_and_says_why(
        chronum: Chronum):
    chronum.write("flow.yaml", CHAIN.replace("call: steps:c", "call: other:c"))
    chronum.write("steps.py", STEPS)
    chronum.write("other.py", "def c():\n    raise SystemExit(3)\n")
    assert chronum("run", "flow.yaml", "-q").returncode == 1
    chronum.write("other.py", "def c(:\n")  # cannot be imported to see its parameters
    chronum("resume", "last", "-q")
    assert _ran(chronum) == ["a", "b", "b"]  # b's value is assumed taken; a's is not
    reason = chronum.json("show", "last")["steps"][1]["reason"]
    assert reason.startswith("re-run: its value is needed by 'c' and was not kept ('c' is "
                             "assumed to take it: its function other:c cannot be looked at "
                             "here (cannot import module 'other': SyntaxError"), reason


def _two_step(chronum: Chronum, second: str = "false") -> None:
    chronum.write("flow.yaml", f"""
        name: two
        steps:
          - name: one
            run: echo one >> ran.txt
          - name: two
            run: echo two >> ran.txt && {second}
            needs: [one]
        """)


def test_a_succeeded_resume_is_named_and_again_runs_the_rest_once_more(chronum: Chronum):
    _two_step(chronum, "test -e fixed")
    assert chronum("run", "flow.yaml", "-q").returncode == 1
    first = chronum.json("show", "last")["run_id"]
    (chronum.cwd / "fixed").touch()
    assert chronum("resume", first, "-q").returncode == 0
    second = chronum.json("show", "last")["run_id"]
    refused = chronum("resume", first, "-q")
    assert refused.returncode == 2
    assert refused.stderr == (f"chronum: error: run {first} was already resumed by run "
                              f"{second}, which succeeded; resume {first} once more with "
                              "--again (again=True in Python)\n")
    assert chronum("resume", first, "--again", "-q").returncode == 0
    assert _ran(chronum) == ["one", "two", "two", "two"]


def test_a_run_that_succeeded_has_nothing_to_resume_unless_again(chronum: Chronum):
    _two_step(chronum, "true")
    assert chronum("run", "flow.yaml", "-q").returncode == 0
    first = chronum.json("show", "last")["run_id"]
    refused = chronum("resume", "last", "-q")
    assert refused.returncode == 2
    assert refused.stderr == (f"chronum: error: run {first} succeeded: nothing to resume; run "
                              "its flow again with `chronum run`, or resume "
                              f"{first} with --again (again=True in Python) to record a run "
                              "that reuses every step\n")
    assert chronum.json("show", "last")["run_id"] == first  # nothing was recorded
    assert chronum("resume", first, "--again", "-q").returncode == 0
    assert chronum.json("show", "last")["steps"][0]["status"] == "cached"
    assert _ran(chronum) == ["one", "two"]


@pytest.mark.parametrize("n", [2, 4])
def test_concurrent_resumes_run_the_remaining_steps_once(chronum: Chronum, n: int):
    chronum.write("flow.yaml", """
        name: slow
        steps:
          - name: one
            run: echo one >> ran.txt
          - name: two
            run: test -e fixed && sleep 1 && echo two >> ran.txt
            needs: [one]
          - name: three
            run: echo three >> ran.txt
            needs: [two]
        """)
    assert chronum("run", "flow.yaml", "-q").returncode == 1
    failed = chronum.json("show", "last")["run_id"]  # by id: `last` would soon name a resume
    (chronum.cwd / "fixed").touch()
    procs = [chronum.popen("resume", failed, "-q") for _ in range(n)]
    results = [(p.wait(60), p.communicate()[1]) for p in procs]
    assert sorted(code for code, _ in results) == [0] + [2] * (n - 1), results
    for code, err in results:
        if code:
            assert "is being resumed by run" in err or "was already resumed by run" in err, err
    assert _ran(chronum) == ["one", "two", "three"]


def test_resume_from_another_folder_runs_the_run_s_own_flow(chronum: Chronum, tmp_path: Path):
    a, b = tmp_path / "projA", tmp_path / "projB"
    a.mkdir()
    b.mkdir()
    (a / "flow.yaml").write_text("name: proj\nsteps:\n  - name: s\n    run: echo A >> ../ran.txt"
                                 " && test -e ../fixed\n")
    (b / "flow.yaml").write_text("name: proj\nsteps:\n  - name: s\n    run: echo B >> ../ran.txt"
                                 "\n")
    in_a = Chronum(a)
    in_a.db = chronum.db
    in_a.env = chronum.env
    assert in_a("run", "flow.yaml", "-q").returncode == 1
    (tmp_path / "fixed").touch()
    in_b = Chronum(b)
    in_b.env = chronum.env
    assert in_b("resume", "last", "-q").returncode == 0
    assert (tmp_path / "ran.txt").read_text().split() == ["A", "A"]


def test_resume_refuses_a_flow_with_other_steps_or_needs_and_notes_a_changed_command(
        chronum: Chronum):
    _two_step(chronum)
    assert chronum("run", "flow.yaml", "-q").returncode == 1
    chronum.write("flow.yaml", (chronum.cwd / "flow.yaml").read_text()
                  .replace("name: two\n    run", "name: deux\n    run"))
    refused = chronum("resume", "last", "-q")
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    assert "has other steps than run" in refused.stderr and "new: deux; gone: two" in refused.stderr
    _two_step(chronum)
    chronum.write("flow.yaml", (chronum.cwd / "flow.yaml").read_text()
                  .replace("    needs: [one]\n", ""))
    refused = chronum("resume", "last", "-q")
    assert refused.returncode == 2 and "need other steps than in run" in refused.stderr
    _two_step(chronum, "true")  # only a command changed: allowed, and said
    allowed = chronum("resume", "last", "-q")
    assert allowed.returncode == 0, allowed.stderr
    assert "the flow file changed since run" in allowed.stderr
    row = chronum.json("show", "last")["steps"][1]
    assert row["status"] == "succeeded" and "ran with its current command" in row["reason"]


def test_the_flow_path_is_stored_absolute_with_a_hash(chronum: Chronum):
    _two_step(chronum)
    chronum("run", "flow.yaml", "-q")
    con = sqlite3.connect(chronum.db)
    try:
        path, digest, shape = con.execute(
            "select flow_path, flow_hash, flow_shape from runs").fetchone()
    finally:
        con.close()
    assert Path(path) == (chronum.cwd / "flow.yaml").resolve() or path == str(
        chronum.cwd / "flow.yaml")
    assert len(digest) == 64 and len(shape) == 32
