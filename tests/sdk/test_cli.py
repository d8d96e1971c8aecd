"""`chronum run pipeline.py`, `graph`, `validate` and `resume` on Python flow files, for real."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import time
from pathlib import Path

from .conftest import Cli

PIPELINE = """
    import os
    import chronum

    flow = chronum.Flow("etl", max_parallel=2)

    @flow.step()
    def load():
        print("loading")
        return [3, 1, 2]

    @flow.step(persist=os.environ.get("PERSIST") == "1")
    def clean(load):
        print("cleaning")
        return sorted(load)

    @flow.step()
    def report(clean):
        if not os.path.exists("fixed"):
            raise RuntimeError("not fixed yet")
        print("total", sum(clean))
        return sum(clean)

    flow.shell("notify", "echo done", needs=[report])

    if __name__ == "__main__":
        raise SystemExit("the parser must not run the main block")
"""


def _steps(cli: Cli, ref: str = "last") -> list[tuple[str, str, str | None]]:
    proc = cli("show", ref, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return [(s["step"], s["status"], s["reason"]) for s in json.loads(proc.stdout)["steps"]]


def test_run_a_python_file(cli: Cli):
    cli.write("pipeline.py", PIPELINE)
    (cli.cwd / "fixed").touch()
    proc = cli("run", "pipeline.py")
    assert proc.returncode == 0, proc.stderr
    assert "[report] total 6" in proc.stdout and "[notify] done" in proc.stdout
    assert [s[:2] for s in _steps(cli)] == [("load", "succeeded"), ("clean", "succeeded"),
                                            ("report", "succeeded"), ("notify", "succeeded")]


def test_graph_and_validate_a_python_file(cli: Cli):
    cli.write("pipeline.py", PIPELINE)
    proc = cli("graph", "pipeline.py")
    assert proc.returncode == 0, proc.stderr
    assert '"clean" -> "report";' in proc.stdout and '"report" -> "notify";' in proc.stdout
    proc = cli("validate", "pipeline.py")
    assert proc.stdout.strip() == "pipeline.py: ok — flow 'etl', 4 steps"


def test_a_bad_python_flow_is_reported_at_its_line(cli: Cli):
    cli.write("bad.py", """
        import chronum

        flow = chronum.Flow("bad")
        flow.shell("build", "make")
        flow.shell("test", "pytest", needs=["biuld"])
    """)
    proc = cli("run", "bad.py")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("bad.py:5:1: test.needs[0]: unknown step 'biuld' "
                                   "(did you mean 'build'?)")


def test_a_file_with_several_flows_or_none(cli: Cli):
    cli.write("two.py", """
        import chronum

        first = chronum.Flow("one")
        second = chronum.Flow("two")
    """)
    proc = cli("validate", "two.py")
    assert proc.returncode == 2
    assert "several flows: first ('one'), second ('two')" in proc.stderr
    cli.write("none.py", "x = 1\n")
    proc = cli("validate", "none.py")
    assert proc.returncode == 2 and "defines no chronum.Flow" in proc.stderr
    cli.write("raises.py", "import chronum\n\nflow = chronum.Flow('x')\n1 / 0\n")
    proc = cli("validate", "raises.py")
    assert proc.stderr.strip() == ("raises.py:4:1: the file raised ZeroDivisionError: "
                                   "division by zero")


def test_resume_in_another_process_reloads_a_persisted_value(cli: Cli):
    cli.write("pipeline.py", PIPELINE)
    cli.env["PERSIST"] = "1"
    assert cli("run", "pipeline.py").returncode == 1
    (cli.cwd / "fixed").touch()
    proc = cli("resume", "last")
    assert proc.returncode == 0, proc.stderr
    assert "loading" not in proc.stdout and "cleaning" not in proc.stdout
    assert "[report] total 6" in proc.stdout
    assert [s[1] for s in _steps(cli)] == ["cached", "cached", "succeeded", "succeeded"]
    assert list(cli.db.parent.glob("runs/*/values/clean.pickle"))


def test_resume_reruns_an_upstream_whose_value_was_not_kept_and_says_why(cli: Cli):
    cli.write("pipeline.py", PIPELINE)
    assert cli("run", "pipeline.py").returncode == 1
    (cli.cwd / "fixed").touch()
    proc = cli("resume", "last")
    assert proc.returncode == 0, proc.stderr
    assert "loading" in proc.stdout and "cleaning" in proc.stdout
    assert _steps(cli) == [
        ("load", "succeeded", "re-run: its value is needed by 'clean' and was not kept"),
        ("clean", "succeeded", "re-run: its value is needed by 'report' and was not kept"),
        ("report", "succeeded", None),
        ("notify", "succeeded", None),
    ]


def test_a_killed_run_resumes_with_the_value_it_persisted(cli: Cli):
    cli.write("slow.py", """
        import time
        import chronum

        flow = chronum.Flow("slow")

        @flow.step(persist=True)
        def frame():
            print("computing")
            return {"rows": [1, 2, 3]}

        @flow.step()
        def wait(frame):
            if not __import__("os").path.exists("go"):
                time.sleep(60)
            return len(frame["rows"])
    """)
    proc = cli.popen("run", "slow.py")
    try:
        deadline = time.monotonic() + 30
        while not list(cli.db.parent.glob("runs/*/values/frame.pickle")):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        while _status(cli.db, "wait") != "running":  # the store has recorded frame's success
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    (cli.cwd / "go").touch()
    proc2 = cli("resume", "last")
    assert proc2.returncode == 0, proc2.stderr
    assert "computing" not in proc2.stdout
    assert [s[1] for s in _steps(cli)] == ["cached", "succeeded"]


def _status(db: Path, step: str) -> str | None:
    if not db.exists():
        return None
    with contextlib.closing(sqlite3.connect(db)) as conn:
        row = conn.execute("SELECT status FROM steps WHERE step = ?", (step,)).fetchone()
    return None if row is None else str(row[0])


def test_the_etl_example_runs_and_writes_equal_yaml(cli: Cli):
    example = Path(__file__).resolve().parents[2] / "examples" / "etl.py"
    proc = cli("run", str(example))
    assert proc.returncode == 0, proc.stderr
    assert "[clean] dropped 1 row(s) without a temperature" in proc.stdout
    script = ("import sys, chronum.spec; sys.path.insert(0, sys.argv[1]); import etl; "
              "text = etl.flow.to_yaml(); "
              "print(chronum.spec.loads(text) == etl.flow.build(), 'call: etl:clean' in text)")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", script, str(example.parent)], cwd=cli.cwd,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "True"], out.stderr


def test_a_file_that_runs_its_flow_on_import_is_refused(cli: Cli):
    cli.write("eager.py", """
        import chronum

        flow = chronum.Flow("eager")
        flow.shell("a", "touch ran")
        flow.run()
    """)
    proc = cli("run", "eager.py")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ('eager.py:5:1: the flow is run while the file is being loaded '
                                   '(put `flow.run()` under `if __name__ == "__main__":`)')
    assert not (cli.cwd / "ran").exists()
