"""The hard cases: Ctrl-C, kill -9 of the runner, timeouts over process trees, huge output,
resume, several processes on one database."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from .conftest import Chronum, pid_alive, wait_for


def _pids(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [int(p) for p in path.read_text().split()]


def test_timeout_kills_a_tree_whose_child_ignores_sigterm(chronum: Chronum, tmp_path: Path):
    chronum.write("f.yaml", """
        name: stubborn
        steps:
          - name: hang
            timeout: 1
            run: |
              sh -c 'trap "" TERM; echo $$ >> pids; while true; do sleep 0.1; done' &
              echo $$ >> pids
              wait
    """)
    # a short grace keeps the test fast; the default is 5 s
    chronum.env["CHRONUM_KILL_GRACE"] = "0.5"
    obj = json.loads(chronum("run", "f.yaml", "--format", "json").stdout)
    step = obj["steps"][0]
    assert (step["status"], step["exit_code"]) == ("failed", 124)
    assert "timed out after 1s" in step["reason"]
    pids = _pids(tmp_path / "pids")
    assert len(pids) == 2
    wait_for(lambda: not any(pid_alive(p) for p in pids), timeout=5)


def test_ctrl_c_cancels_the_run_and_leaves_nothing_behind(chronum: Chronum, tmp_path: Path):
    chronum.write("f.yaml", """
        name: long
        maxParallel: 2
        steps:
          - name: a
            run: echo $$ >> pids; test -f go || sleep 60
          - name: b
            run: echo $$ >> pids; test -f go || sleep 60
          - name: after
            run: "true"
            needs: [a]
    """)
    proc = chronum.popen("run", "f.yaml")
    wait_for(lambda: len(_pids(tmp_path / "pids")) == 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    for pid in _pids(tmp_path / "pids"):
        assert not pid_alive(pid)
    shown = chronum.json("show", "last")
    assert shown["status"] == "cancelled"
    assert [s["status"] for s in shown["steps"]] == ["cancelled", "cancelled", "skipped"]
    (tmp_path / "go").touch()
    resumed = json.loads(chronum("resume", "last", "--format", "json").stdout)
    assert resumed["status"] == "succeeded"
    assert [s["status"] for s in resumed["steps"]] == ["succeeded"] * 3


def test_kill_9_of_the_runner_leaves_a_consistent_store_and_resume_finishes(
        chronum: Chronum, tmp_path: Path):
    # each step appends its name to done.txt only as its last act before succeeding
    steps = "\n".join(
        f"  - name: s{i}\n    run: sleep 0.05; echo s{i} >> done.txt\n"
        + (f"    needs: [s{i - 1}]\n" if i else "")
        for i in range(30))
    chronum.write("f.yaml", f"name: chain\nsteps:\n{steps}")
    proc = chronum.popen("run", "f.yaml")
    wait_for(lambda: (tmp_path / "done.txt").exists()
             and len((tmp_path / "done.txt").read_text().split()) >= 8)
    proc.kill()
    proc.communicate()
    with sqlite3.connect(chronum.db) as con:
        assert con.execute("pragma integrity_check").fetchone() == ("ok",)
    shown = chronum.json("show", "last")
    assert shown["status"] == "interrupted"
    done = set((tmp_path / "done.txt").read_text().split())
    for step in shown["steps"]:
        if step["status"] == "succeeded":
            assert step["step"] in done, f"{step['step']} recorded succeeded without its effect"
    resumed = chronum("resume", "last", "--format", "json")
    assert resumed.returncode == 0, resumed.stderr
    obj = json.loads(resumed.stdout)
    assert obj["status"] == "succeeded"
    assert set((tmp_path / "done.txt").read_text().split()) == {f"s{i}" for i in range(30)}
    history = chronum.json("history")
    assert history[0]["parent_run_id"] == shown["run_id"]
    kept = [s for s in obj["steps"] if s["status"] == "cached"]
    assert kept and all(s["step"] in done for s in kept)


def test_resume_reruns_failed_and_downstream_only(chronum: Chronum, tmp_path: Path):
    chronum.write("f.yaml", """
        name: flaky
        steps:
          - name: a
            run: echo a >> ran.txt
          - name: b
            run: echo b >> ran.txt; test -f fixed
            needs: [a]
          - name: c
            run: echo c >> ran.txt
            needs: [b]
          - name: d
            run: echo d >> ran.txt
    """)
    first = json.loads(chronum("run", "f.yaml", "--format", "json").stdout)
    assert first["status"] == "failed"
    (tmp_path / "fixed").touch()
    (tmp_path / "ran.txt").unlink()
    second = json.loads(chronum("resume", first["run_id"][:7], "--format", "json").stdout)
    assert second["status"] == "succeeded"
    assert [(s["step"], s["status"]) for s in second["steps"]] == [
        ("a", "cached"), ("b", "succeeded"), ("c", "succeeded"), ("d", "cached")]
    assert (tmp_path / "ran.txt").read_text().split() == ["b", "c"]
    assert chronum.json("history")[0]["parent_run_id"] == first["run_id"]
    # a cached step points at the run that really produced it, across two resumes
    third = json.loads(chronum("resume", "last", "--again", "--format", "json").stdout)
    assert {s["status"] for s in third["steps"]} == {"cached"}
    with sqlite3.connect(chronum.db) as con:
        (origin,) = con.execute("select cached_from from steps where run_id=? and step='a'",
                                (third["run_id"],)).fetchone()
    assert origin == first["run_id"]


def test_a_step_printing_50_mb_keeps_the_runner_small(chronum: Chronum, tmp_path: Path):
    chronum.write("f.yaml", """
        name: chatty
        steps:
          - name: flood
            run: yes 'a line of output that is about fifty bytes long......' | head -c 50000000
    """)
    script = ("import resource, subprocess, sys;"
              "p = subprocess.run([sys.executable, '-m', 'chronum', 'run', 'f.yaml', '-q'],"
              " stdout=subprocess.DEVNULL);"
              "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=chronum.env,
                         capture_output=True, text=True, timeout=300).stdout.split()
    code, peak_kb = int(out[0]), int(out[1])
    assert code == 0
    assert peak_kb < 150_000, f"runner peaked at {peak_kb} KB"
    log = chronum("logs", "last", "flood")
    assert len(log.stdout) >= 49_000_000


def test_four_processes_share_one_database(chronum: Chronum):
    steps = "\n".join(f"  - name: s{i}\n    run: 'true'" for i in range(40))
    chronum.write("f.yaml", f"name: busy\nmaxParallel: 4\nsteps:\n{steps}")
    procs = [chronum.popen("run", "f.yaml", "-q") for _ in range(4)]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert "locked" not in err
    history = chronum.json("history")
    assert len(history) == 4
    with sqlite3.connect(chronum.db) as con:
        per_run = con.execute("select run_id, count(*), sum(status='succeeded') from steps "
                              "group by run_id").fetchall()
        attempts = con.execute("select count(*) from attempts").fetchone()[0]
    assert sorted(n for _, n, _ in per_run) == [40] * 4
    assert all(ok == 40 for _, _, ok in per_run)
    assert attempts == 160
