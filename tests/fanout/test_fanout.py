"""Fan-out (``foreach:``, ``matrix:``) against real processes and a real SQLite file."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

import chronum

from .conftest import Chronum

STEPS = """
from pathlib import Path

def list_files():
    return ["a.csv", "b.csv", "bad.csv", "d.csv"]

def process(item):
    with open("ran.txt", "a") as fh:
        fh.write(item + "\\n")
    if item == "bad.csv" and not Path("fixed").exists():
        raise ValueError("cannot read " + item)
    return item.upper()

def report(process):
    with open("report.json", "w") as fh:
        fh.write(__import__("json").dumps(process))
    return process
"""

FLOW = """
name: files
maxParallel: 3
steps:
  - {name: list_files, executor: python, call: "steps:list_files", persist: true}
  - name: process
    executor: python
    call: "steps:process"
    foreach: {from: list_files}
    persist: true
  - {name: report, executor: python, call: "steps:report", needs: [process]}
"""


def _ran(chronum: Chronum) -> list[str]:
    path = chronum.cwd / "ran.txt"
    lines = path.read_text().split() if path.exists() else []
    path.unlink(missing_ok=True)
    return sorted(lines)


def test_fanout_over_an_upstream_value_resumes_only_the_failed_instance(chronum: Chronum):
    chronum.write("steps.py", STEPS)
    chronum.write("flow.yaml", FLOW)
    first = chronum("run", "flow.yaml")
    assert first.returncode == 1, first.stdout + first.stderr
    assert _ran(chronum) == ["a.csv", "b.csv", "bad.csv", "d.csv"]
    assert "process[2]" in first.stdout and "1 of 4 instances failed" in first.stdout
    steps = {s["step"]: s for s in chronum.json("show", "last")["steps"]}
    assert steps["process"]["status"] == "failed"
    assert steps["report"]["status"] == "upstream_failed"
    assert [steps[f"process[{i}]"]["status"] for i in range(4)] == [
        "succeeded", "succeeded", "failed", "succeeded"]
    assert steps["process[2]"]["item"] == '"bad.csv"'
    assert steps["list_files"]["item"] is None

    (chronum.cwd / "fixed").write_text("")
    again = chronum("resume", "last")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _ran(chronum) == ["bad.csv"]  # only the failed instance ran again
    # ... and the step that needs the fan-out got every value, in item order
    assert json.loads((chronum.cwd / "report.json").read_text()) == [
        "A.CSV", "B.CSV", "BAD.CSV", "D.CSV"]
    steps = {s["step"]: s for s in chronum.json("show", "last")["steps"]}
    assert [steps[f"process[{i}]"]["status"] for i in range(4)] == [
        "cached", "cached", "succeeded", "cached"]
    assert steps["process"]["status"] == "succeeded"


def test_a_three_by_two_matrix_runs_every_combination_in_order(chronum: Chronum):
    chronum.write("flow.yaml", """
        name: grid
        steps:
          - name: build
            matrix: {region: [eu, us, ap], size: [s, m]}
            run: echo "$CHRONUM_STEP $CHRONUM_MATRIX_REGION $CHRONUM_MATRIX_SIZE $CHRONUM_ITEM"
    """)
    proc = chronum("run", "flow.yaml", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    names = [f"build[region={r},size={s}]" for r in ("eu", "us", "ap") for s in ("s", "m")]
    rows = chronum.json("show", "last")["steps"]
    assert [r["step"] for r in rows] == ["build", *names]
    assert all(r["status"] == "succeeded" for r in rows)
    log = chronum("logs", "last", "build[region=us,size=m]")
    assert log.stdout.strip() == 'build[region=us,size=m] us m {"region":"us","size":"m"}'


def test_python_instances_get_the_item_and_the_matrix_keys(tmp_path: Path):
    (tmp_path / "fx.py").write_text(textwrap.dedent("""
        def square(item):
            return item * item

        def pair(region, size, item):
            return f"{region}-{size}-{sorted(item)}"

        def total(square, pair):
            return sum(square), pair
    """))
    flow = tmp_path / "f.yaml"
    flow.write_text(textwrap.dedent("""
        name: py
        maxParallel: 4
        params: {n: "[1, 2, 3]"}
        steps:
          - {name: square, executor: python, call: "fx:square", foreach: {param: n}}
          - {name: pair, executor: python, call: "fx:pair",
             matrix: {region: [eu, us], size: [1]}}
          - {name: total, executor: python, call: "fx:total", needs: [square, pair]}
    """))
    db = tmp_path / "db" / "c.db"
    run = chronum.run(flow, db=db)
    assert run.status == "succeeded"
    assert run.outputs["square"] == [1, 4, 9]
    assert run.outputs["total"] == (14, ["eu-1-['region', 'size']", "us-1-['region', 'size']"])
    # items of a comma list are strings: "4" * "4" fails
    assert chronum.run(flow, db=db, params={"n": "4, 5"}).status == "failed"
    steps = chronum.steps(db=db).set_index("step")
    assert list(steps.loc[["square[0]", "square[1]"], "item"]) == ['"4"', '"5"']
    assert "TypeError" in steps.loc["square[0]", "reason"]


def test_continue_on_error_hands_none_for_failed_instances(tmp_path: Path):
    flow = tmp_path / "f.yaml"
    (tmp_path / "fy.py").write_text(textwrap.dedent("""
        def half(item):
            if item % 2:
                raise ValueError("odd")
            return item // 2

        def collect(half):
            return half
    """))
    flow.write_text(textwrap.dedent("""
        name: coe
        maxParallel: 2
        steps:
          - {name: half, executor: python, call: "fy:half", foreach: [2, 3, 4, 5],
             continueOnError: true, retry: {limit: 1, backoff: {base: 0}}}
          - {name: collect, executor: python, call: "fy:collect", needs: [half]}
    """))
    db = tmp_path / "c.db"
    run = chronum.run(flow, db=db)
    assert run.status == "succeeded"
    assert run.outputs["collect"] == [1, None, 2, None]
    steps = chronum.steps(run.run_id, db=db).set_index("step")
    assert steps.loc["half[1]", "attempts"] == 2  # each instance retries on its own
    assert steps.loc["half[0]", "attempts"] == 1
    assert steps.loc["half", "status"] == "failed"
    assert steps.loc["collect", "status"] == "succeeded"
    assert steps["item"].isna().sum() == 2  # the two plain steps


def test_concurrency_caps_the_instances_of_a_step(chronum: Chronum):
    chronum.write("flow.yaml", """
        name: capped
        maxParallel: 6
        steps:
          - name: slow
            foreach: [1, 2, 3, 4, 5, 6]
            concurrency: 2
            run: sleep 0.2
    """)
    proc = chronum("run", "flow.yaml", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = [r for r in chronum.json("show", "last")["steps"] if r["step"] != "slow"]
    assert len(rows) == 6
    spans = [(r["started_at"], r["finished_at"]) for r in rows]
    most = max(sum(1 for s, f in spans if s <= t < f) for t, _ in spans)
    assert most == 2


@pytest.mark.parametrize(("source", "error"), [
    ("{param: xs}", "foreach: param 'xs' starts with '[' but is not a JSON list"),
    ("{from: src}", "foreach: the value of 'src' is nothing (None); it must be a list"),
])
def test_items_that_cannot_be_worked_out_fail_the_step(chronum: Chronum, source: str,
                                                        error: str):
    chronum.write("flow.yaml", f"""
        name: bad
        params: {{xs: "[1, 2"}}
        steps:
          - {{name: src, run: "true"}}
          - {{name: each, run: "true", foreach: {source}}}
    """)
    proc = chronum("run", "flow.yaml")
    assert proc.returncode == 1
    assert error in proc.stdout


def test_plain_output_groups_the_instances(chronum: Chronum):
    chronum.write("flow.yaml", """
        name: grouped
        steps:
          - name: process
            foreach: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
            run: test "$CHRONUM_ITEM" != 3
            continueOnError: true
    """)
    proc = chronum("run", "flow.yaml")
    assert proc.returncode == 0, proc.stderr
    lines = [re.sub(r" in \d+\.\ds", " in Ns", line) for line in proc.stdout.splitlines()]
    assert lines[1:14] == [
        "[process] 10 instances",
        "process[ 1/10 ] ✓1 ✗0",
        "process[ 2/10 ] ✓2 ✗0",
        "[process[2]] failed in Ns: exited with code 1 (continueOnError)",
        "process[ 4/10 ] ✓3 ✗1",
        "process[ 5/10 ] ✓4 ✗1",
        "process[ 6/10 ] ✓5 ✗1",
        "process[ 7/10 ] ✓6 ✗1",
        "process[ 8/10 ] ✓7 ✗1",
        "process[ 9/10 ] ✓8 ✗1",
        "process[10/10 ] ✓9 ✗1",
        "[process] failed in Ns: 1 of 10 instances failed: process[2] (continueOnError)",
        "✓ run " + lines[0].split(" · run ")[1].split(" ")[0] + " succeeded with 1 failure "
        "(continued) in Ns (2 failed, 9 succeeded)",
    ]
    assert not any("started" in line for line in lines)  # no line per instance start


def test_resume_in_the_same_process_reruns_only_the_failed_instances(tmp_path: Path):
    (tmp_path / "fz.py").write_text(textwrap.dedent("""
        RAN = []
        BROKEN = {"b"}

        def letters():
            return ["a", "b", "c"]

        def upper(item):
            RAN.append(item)
            if item in BROKEN:
                raise ValueError(item)
            return item.upper()

        def joined(upper):
            return "".join(upper)
    """))
    flow = tmp_path / "f.yaml"
    flow.write_text(textwrap.dedent("""
        name: same-process
        steps:
          - {name: letters, executor: python, call: "fz:letters"}
          - {name: upper, executor: python, call: "fz:upper", foreach: {from: letters},
             retry: {limit: 1, backoff: {base: 0}}}
          - {name: joined, executor: python, call: "fz:joined", needs: [upper]}
    """))
    db = tmp_path / "c.db"
    run = chronum.run(flow, db=db)
    import fz  # the flow's folder is on sys.path: the module the steps called

    assert run.status == "failed" and fz.RAN == ["a", "b", "b", "c"]  # b retried once
    fz.RAN.clear()
    fz.BROKEN.clear()
    again = run.resume()
    assert again.status == "succeeded" and fz.RAN == ["b"]
    assert again.outputs["joined"] == "ABC"
