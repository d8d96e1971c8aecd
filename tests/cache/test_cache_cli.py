"""Caching through the real `chronum` command: a flow with a python script, a data file it
reads and a file it writes, run again and again against one SQLite file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import Chronum

FLOW = """
name: pipe
cache: true
params:
  region: eu
steps:
  - name: load
    executor: python
    run: load.py
    inputs: [data/raw.csv]
    outputs: [build/loaded.csv]
  - name: clean
    run: tr a-z A-Z < build/loaded.csv > build/clean.csv
    needs: [load]
    inputs: [build/loaded.csv]
    outputs: [build/clean.csv]
  - name: other
    run: echo other $CHRONUM_PARAM_REGION
    inputs: [data/other.txt]
  - name: report
    run: cat build/clean.csv
    needs: [clean, other]
"""

LOAD = """
import pathlib
pathlib.Path("build").mkdir(exist_ok=True)
text = pathlib.Path("data/raw.csv").read_text()
pathlib.Path("build/loaded.csv").write_text(text)
print("loaded", len(text.splitlines()), "lines")
"""


@pytest.fixture
def project(chronum: Chronum) -> Chronum:
    chronum.write("flow.yaml", FLOW)
    chronum.write("load.py", LOAD)
    chronum.write("data/raw.csv", "a,b\n1,2\n")
    chronum.write("data/other.txt", "x\n")
    return chronum


def steps(chronum: Chronum, ref: str = "last") -> dict[str, dict[str, str]]:
    proc = chronum("show", ref, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return {row["step"]: row for row in json.loads(proc.stdout)["steps"]}


def run(chronum: Chronum, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    proc = chronum("run", "flow.yaml", *args)
    assert proc.returncode == code, proc.stdout + proc.stderr
    return proc


def states(chronum: Chronum) -> dict[str, tuple[str, str]]:
    return {name: (row["status"], row["reason"]) for name, row in steps(chronum).items()}


def test_a_second_run_reuses_every_step_and_says_from_which_run(project: Chronum) -> None:
    run(project)
    first = steps(project)
    assert {row["reason"] for row in first.values()} == {"no earlier result"}
    run(project)
    again = steps(project)
    for name, row in again.items():
        assert row["status"] == "cached"
        assert row["attempts"] == 0
        assert row["reason"].startswith("cached: same key as run ")
        assert row["reason"].endswith(f"…, step {name}")
        assert row["cache_key"] == first[name]["cache_key"]


def test_editing_the_data_runs_only_its_readers_and_their_downstream(project: Chronum) -> None:
    run(project)
    project.write("data/raw.csv", "a,b\n1,2\n3,4\n")
    run(project)
    assert states(project) == {
        "load": ("succeeded", "input data/raw.csv changed"),
        "clean": ("succeeded", "upstream load ran"),
        "other": ("cached", states(project)["other"][1]),
        "report": ("succeeded", "upstream clean ran"),
    }
    assert (project.cwd / "build" / "clean.csv").read_text() == "A,B\n1,2\n3,4\n"


def test_a_deleted_output_runs_its_step_again(project: Chronum) -> None:
    run(project)
    (project.cwd / "build" / "clean.csv").unlink()
    run(project)
    got = states(project)
    assert got["load"][0] == "cached"
    assert got["clean"] == ("succeeded", "outputs missing: build/clean.csv")
    assert got["report"] == ("succeeded", "upstream clean ran")
    assert (project.cwd / "build" / "clean.csv").exists()


def test_a_changed_param_and_script_say_what_changed(project: Chronum) -> None:
    run(project)
    run(project, "-p", "region=us")
    got = states(project)
    assert got["other"] == ("succeeded", "param region changed (eu → us)")
    project.write("load.py", LOAD + "\nprint('edited')\n")
    run(project, "-p", "region=us")
    got = states(project)
    assert got["load"] == ("succeeded", "definition changed")
    assert got["other"][0] == "cached"


def test_no_cache_runs_everything_and_still_records_keys(project: Chronum) -> None:
    run(project)
    run(project, "--no-cache")
    got = steps(project)
    assert {row["status"] for row in got.values()} == {"succeeded"}
    assert {row["reason"] for row in got.values()} == {"cache off"}
    assert all(row["cache_key"] for row in got.values())
    run(project)  # the keys recorded by --no-cache serve the next run
    assert {row["status"] for row in steps(project).values()} == {"cached"}


def test_from_reruns_the_step_and_its_downstream(project: Chronum) -> None:
    run(project)
    run(project, "--from", "clean")
    got = states(project)
    assert got["clean"] == ("succeeded", "forced by --from clean")
    assert got["report"] == ("succeeded", "forced by --from clean")
    assert got["load"][0] == "cached" and got["load"][1].startswith("reused by --from")
    assert got["other"][0] == "cached"


def test_only_runs_just_the_named_steps(project: Chronum) -> None:
    run(project)
    proc = run(project, "--only", "clean", "other")
    got = states(project)
    assert got["clean"] == ("succeeded", "forced by --only clean")
    assert got["other"] == ("succeeded", "forced by --only other")
    assert got["load"][0] == "cached"
    assert got["report"] == ("skipped", "not selected by --only")
    assert "[report] skipped: not selected by --only" in proc.stdout


def test_from_and_only_errors_name_the_step(project: Chronum) -> None:
    proc = run(project, "--from", "claen", code=2)
    assert proc.stderr.strip() == \
        "chronum: error: --from: unknown step 'claen'; did you mean 'clean'?"
    proc = run(project, "--only", "reprot", code=2)
    assert "--only: unknown step 'reprot'; did you mean 'report'?" in proc.stderr
    proc = run(project, "--only", "report", code=2)  # nothing ran before: nothing to reuse
    assert proc.stderr.strip() == (
        "chronum: error: --only report: step 'load' has no earlier result to reuse; run it "
        "first (--only load, or the whole flow)")
    assert "Traceback" not in proc.stderr


def test_resume_runs_a_kept_step_that_was_edited_and_its_downstream(project: Chronum) -> None:
    project.write("data/other.txt", "x\n")
    flow = FLOW.replace("run: cat build/clean.csv", "run: test -f go && cat build/clean.csv")
    project.write("flow.yaml", flow)
    run(project, code=1)
    failed = json.loads(project("show", "last", "--format", "json").stdout)["run_id"]
    project.write("flow.yaml", flow.replace("tr a-z A-Z", "tr 'a-z,' 'A-Z;'"))
    (project.cwd / "go").touch()
    proc = project("resume", failed)
    assert proc.returncode == 0, proc.stderr
    got = states(project)
    assert got["load"][0] == "cached"
    assert got["other"][0] == "cached"
    assert got["clean"] == ("succeeded", f"definition changed since run {failed}")
    assert got["report"][0] == "succeeded"
    assert (project.cwd / "build" / "clean.csv").read_text() == "A;B\n1;2\n"


def test_located_errors_and_warnings(chronum: Chronum) -> None:
    chronum.write("bad.yaml", """
        name: bad
        steps:
          - name: a
            run: echo a
            cacheFor: soon
          - name: b
            run: echo b
            inputs: 3
    """)
    proc = chronum("validate", "bad.yaml")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[:2] == [
        "bad.yaml:5:15: steps[0].cacheFor: expected seconds or a duration, got a string "
        "'soon' (write a number of seconds or a duration like 90s, 10m, 2h or 1h30m)",
        "bad.yaml:8:13: steps[1].inputs: expected a path or a list of paths, got an "
        "integer 3",
    ]
    chronum.write("warn.yaml", """
        name: warn
        steps:
          - name: a
            run: echo a
            inputs: [data/*.csv]
            outputs: [../elsewhere.txt]
    """)
    proc = chronum("validate", "warn.yaml")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "chronum: warning: warn.yaml:3:5: steps[0].inputs: input data/*.csv matched no file "
        "(create it, fix the path (relative to the flow's folder), or remove it from 'inputs')",
        "chronum: warning: warn.yaml:3:5: steps[0].outputs: output ../elsewhere.txt is "
        "outside the flow's folder (allowed; a cached step is reused only while it is "
        "there, unchanged)",
    ]
    proc = chronum("run", "warn.yaml")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == (
        "warn.yaml:3:5: steps[0].inputs: input data/*.csv matched no file (create it, fix the "
        "path (relative to the flow's folder), or remove it from 'inputs')")


CALLS = """
name: calls
cache: true
steps:
  - name: make
    executor: python
    call: steps:make
  - name: use
    executor: python
    call: steps:use
    needs: [make]
    cache: false
"""
STEPS = """
def make():
    print("making")
    return {"rows": [1, 2, 3]}

def use(make):
    print("sum", sum(make["rows"]))
"""


def test_a_cached_python_value_is_kept_listed_and_cleared(chronum: Chronum) -> None:
    chronum.write("flow.yaml", CALLS)
    chronum.write("steps.py", STEPS)
    run(chronum)
    proc = run(chronum)
    assert states(chronum)["make"][0] == "cached"
    assert states(chronum)["use"] == ("succeeded", "cache off")
    assert "[use] sum 6" in proc.stdout
    listed = chronum("cache", "list")
    assert listed.returncode == 0, listed.stderr
    assert "calls" in listed.stdout and "make" in listed.stdout
    assert listed.stdout.strip().endswith("1 kept value, 98 B") or "1 kept value" in listed.stdout
    cleared = chronum("cache", "clear", "--flow", "calls")
    assert cleared.returncode == 0 and cleared.stdout.startswith("removed 1 kept value")
    values = list((chronum.db.parent / "runs").rglob("make.pickle"))
    assert values == []
    run(chronum)
    assert states(chronum)["make"] == ("succeeded", "value gone")
    assert chronum("cache", "clear", "--older-than", "soon").returncode == 2


def test_two_processes_caching_the_same_step_both_succeed(chronum: Chronum) -> None:
    chronum.write("flow.yaml", CALLS.replace("cache: false", "cache: true"))
    chronum.write("steps.py", STEPS)
    procs = [chronum.popen("run", "flow.yaml") for _ in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, out + err
    run(chronum)
    assert {s for s, _ in states(chronum).values()} == {"cached"}


def test_the_input_hash_is_remembered(project: Chronum, tmp_path: Path) -> None:
    import os
    import sqlite3
    import time

    old = time.time() - 60  # older than the racy window: the hash may be remembered
    for name in ("data/raw.csv", "data/other.txt"):
        os.utime(project.cwd / name, (old, old))
    run(project)
    with sqlite3.connect(project.db) as conn:
        paths = {Path(p).name for (p,) in conn.execute("SELECT path FROM input_hashes")}
    assert {"raw.csv", "other.txt"} <= paths


OUTPUTS_FLOW = """
name: counted
cache: true
steps:
  - name: count
    run: echo counting; echo rows=3 >> "$CHRONUM_OUTPUT"
  - name: report
    needs: [count]
    if: steps.count.outputs.rows == '3'
    run: echo "rows $CHRONUM_OUT_COUNT_ROWS"
    cache: false
"""


def test_a_cache_hit_brings_back_the_outputs_of_the_step_it_reuses(chronum: Chronum) -> None:
    """The steps after a reused step see its outputs (``if:`` and ``$CHRONUM_OUT_*``) as if it
    had run: the cached result includes what the step said, not only that it succeeded."""
    chronum.write("flow.yaml", OUTPUTS_FLOW)
    first = chronum("run", "flow.yaml")
    assert first.returncode == 0, first.stderr
    again = chronum("run", "flow.yaml")
    assert again.returncode == 0, again.stderr
    rows = steps(chronum)
    assert rows["count"]["status"] == "cached"
    assert rows["report"]["status"] == "succeeded", rows["report"]
    log = chronum("logs", "last", "report")
    assert "rows 3" in log.stdout
