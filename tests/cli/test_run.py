"""`chronum run` end to end: real subprocesses, a real SQLite file, exit codes, JSON shapes."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
from pathlib import Path

import pytest

from .conftest import Chronum

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_readme_example_runs_and_is_recorded(chronum: Chronum, tmp_path: Path):
    shutil.copytree(EXAMPLES, tmp_path / "ex", ignore=shutil.ignore_patterns("build"))
    proc = chronum("run", "ex/chronum.yaml")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "[build] Building project" in out
    assert "[build] succeeded in" in out
    assert "[preprocess] preprocessed 4 rows" in out
    last = out.strip().splitlines()[-1]
    assert " succeeded " in last and "run " in last
    shown = chronum.json("show", "last")
    assert [s["step"] for s in shown["steps"]] == ["build", "test", "lint", "deploy",
                                                   "preprocess", "deployed"]
    assert {s["status"] for s in shown["steps"]} == {"succeeded"}
    assert (tmp_path / "ex" / "build" / "summary.json").exists()
    release = tmp_path / "ex" / "build" / f"release-{shown['run_id']}.txt"
    assert release.read_text().startswith("flow: deploy-api")


def test_json_output_has_the_documented_shape(chronum: Chronum):
    chronum.write("f.yaml", """
        name: shape
        steps:
          - name: a
            run: echo hi
          - name: b
            run: exit 3
            needs: [a]
          - name: c
            run: "true"
            needs: [b]
    """)
    proc = chronum("run", "f.yaml", "--format", "json")
    assert proc.returncode == 1
    obj = json.loads(proc.stdout)
    assert list(obj) == ["run_id", "flow", "status", "started_at", "finished_at", "steps",
                         "reason", "n_continued", "outputs"]
    assert obj["status"] == "failed" and obj["flow"] == "shape"
    assert [list(s) for s in obj["steps"]] == [[
        "step", "status", "attempts", "exit_code", "started_at", "finished_at", "duration_s",
        "reason", "cache_key", "item"]] * 3
    assert [(s["step"], s["status"], s["exit_code"]) for s in obj["steps"]] == [
        ("a", "succeeded", 0), ("b", "failed", 3), ("c", "upstream_failed", None)]
    assert obj == chronum.json("show", obj["run_id"][:6])
    history = chronum.json("history")
    assert list(history[0]) == ["run_id", "flow", "status", "started_at", "finished_at",
                                "duration_s", "n_steps", "n_failed", "parent_run_id",
                                "n_continued"]
    assert history[0]["run_id"] == obj["run_id"] and history[0]["n_failed"] == 1


def test_piped_progress_is_plain_lines(chronum: Chronum):
    chronum.write("f.yaml", """
        name: plain
        steps:
          - name: build
            run: echo compiling
    """)
    proc = chronum("run", "f.yaml")
    assert "\x1b[" not in proc.stdout
    lines = proc.stdout.splitlines()
    assert lines[1:4] == ["[build] started", "[build] compiling", lines[3]]
    assert lines[3].startswith("[build] succeeded in ")


def test_piped_lines_arrive_while_the_run_goes_on(chronum: Chronum):
    # Lines are flushed within a tenth of a second, not at exit: a CI log shows them live.
    chronum.write("f.yaml", """
        name: live
        steps:
          - name: first
            run: echo early
          - name: slow
            run: sleep 20
            needs: [first]
    """)
    proc = chronum.popen("run", "f.yaml")
    assert proc.stdout is not None
    try:
        seen = []
        for line in proc.stdout:
            seen.append(line.rstrip("\n"))
            if seen[-1] == "[first] early":
                break
        assert seen[-1] == "[first] early", seen
        assert proc.poll() is None  # still running: the line came before the end
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the run stops its step's processes too
        proc.communicate(timeout=30)
    assert proc.returncode == 130


@pytest.mark.parametrize(
    ("body", "code"),
    [("exit 0", 0), ("exit 3", 1), ("kill -9 $$", 1)],
    ids=["ok", "exit-3", "killed-by-signal"],
)
def test_exit_codes(chronum: Chronum, body: str, code: int):
    chronum.write("f.yaml", f"""
        name: codes
        steps:
          - name: s
            run: "{body}"
    """)
    assert chronum("run", "f.yaml").returncode == code


def test_a_step_killed_by_a_signal_is_recorded_as_such(chronum: Chronum):
    chronum.write("f.yaml", """
        name: sig
        steps:
          - name: s
            run: kill -9 $$
    """)
    obj = json.loads(chronum("run", "f.yaml", "--format", "json").stdout)
    step = obj["steps"][0]
    assert step["exit_code"] == 137
    assert "SIGKILL" in step["reason"]


def test_params_reach_steps_as_env_and_are_never_substituted(chronum: Chronum, tmp_path: Path):
    chronum.write("f.yaml", """
        name: params
        params: {region: eu}
        steps:
          - name: s
            run: printf '%s' "$CHRONUM_PARAM_REGION" > region.txt
    """)
    hostile = "us; touch pwned"
    assert chronum("run", "f.yaml", "-p", f"region={hostile}").returncode == 0
    assert (tmp_path / "region.txt").read_text() == hostile
    assert not (tmp_path / "pwned").exists()
    proc = chronum("run", "f.yaml", "-p", "regoin=x")
    assert proc.returncode == 2
    assert "regoin" in proc.stderr and "region" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_env_cwd_and_bash(chronum: Chronum, tmp_path: Path):
    (tmp_path / "sub").mkdir()
    chronum.write("f.yaml", """
        name: envs
        env: {A: flow, B: flow}
        steps:
          - name: s
            env: {B: step}
            cwd: sub
            shell: bash
            run: 'arr=(x y); echo "$A $B ${arr[1]}" > out.txt'
    """)
    assert chronum("run", "f.yaml").returncode == 0
    assert (tmp_path / "sub" / "out.txt").read_text() == "flow step y\n"


def test_events_jsonl_has_every_event(chronum: Chronum, tmp_path: Path):
    chronum.write("f.yaml", """
        name: ev
        steps:
          - name: a
            run: echo one
          - name: b
            run: exit 1
            needs: [a]
            retry: {limit: 1, backoff: {base: 0}}
    """)
    chronum("run", "f.yaml", "--events-jsonl", "ev.jsonl")
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "ev.jsonl").read_text().splitlines()]
    assert kinds.count("step.spawned") == 3  # one per attempt, before or after its first line
    kinds = [kind for kind in kinds if kind != "step.spawned"]
    assert kinds == ["run.started", "step.started", "step.log", "step.succeeded",
                     "step.started", "step.retrying", "step.started", "step.failed",
                     "run.finished"]


def test_logs_are_files_with_a_tail_in_the_database(chronum: Chronum):
    chronum.write("f.yaml", """
        name: logs
        steps:
          - name: talk
            run: for i in 1 2 3; do echo "out $i"; echo "err $i" >&2; done
    """)
    chronum("run", "f.yaml")
    proc = chronum("logs", "last", "talk")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert [line for line in lines if line.startswith("out")] == ["out 1", "out 2", "out 3"]
    assert "err 3" in proc.stdout
    with sqlite3.connect(chronum.db) as con:
        (tail,) = con.execute("select log_tail from steps where step='talk'").fetchone()
    assert "out 3" in tail
    bad = chronum("logs", "last", "tlak")
    assert bad.returncode == 2 and "did you mean 'talk'?" in bad.stderr


def test_run_references(chronum: Chronum):
    chronum.write("f.yaml", """
        name: refs
        steps:
          - name: a
            run: "true"
    """)
    for _ in range(2):
        chronum("run", "f.yaml")
    runs = chronum.json("history")
    assert chronum.json("show", "last")["run_id"] == runs[0]["run_id"]
    assert chronum.json("show", runs[1]["run_id"][:8])["run_id"] == runs[1]["run_id"]
    missing = chronum("show", "zzzz")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_history_formats(chronum: Chronum):
    chronum.write("f.yaml", """
        name: hist
        steps:
          - name: a
            run: "true"
    """)
    chronum("run", "f.yaml")
    csv_out = chronum("history", "--format", "csv").stdout.splitlines()
    assert csv_out[0] == ("run_id,flow,status,started_at,finished_at,duration_s,n_steps,"
                          "n_failed,parent_run_id,n_continued")
    assert ",hist,succeeded," in csv_out[1]
    table = chronum("history").stdout
    assert "hist" in table and "succeeded" in table


def test_the_log_tail_in_the_database_is_capped_and_the_file_whole(chronum: Chronum):
    chronum.write("f.yaml", """
        name: capped
        steps:
          - name: talk
            run: for i in $(seq 1 500); do echo "line $i"; done
    """)
    chronum.env["CHRONUM_LOG_TAIL_BYTES"] = "64"
    assert chronum("run", "f.yaml", "-q").returncode == 0
    with sqlite3.connect(chronum.db) as con:
        (tail,) = con.execute("select log_tail from steps where step='talk'").fetchone()
    assert len(tail) <= 64 and tail.endswith("line 500")
    log = chronum("logs", "last", "talk").stdout.splitlines()
    assert log == [f"line {i}" for i in range(1, 501)]
    chronum.env["CHRONUM_LOG_TAIL_BYTES"] = "lots"
    bad = chronum("run", "f.yaml", "-q")
    assert bad.returncode == 2
    assert "CHRONUM_LOG_TAIL_BYTES must be a whole number, got 'lots'" in bad.stderr


def test_a_sync_call_that_timed_out_does_not_keep_the_process_alive(chronum: Chronum):
    # Python cannot stop the thread of a sync function; the process must exit anyway,
    # not wait the function out (here 60 s, beyond the subprocess timeout below).
    chronum.write("slow.py", """
        import time

        def forever():
            time.sleep(60)
    """)
    chronum.write("f.yaml", """
        name: slow
        steps:
          - name: stuck
            executor: python
            call: slow:forever
            timeout: 0.5
    """)
    proc = chronum("run", "f.yaml", timeout=30)
    assert proc.returncode == 1, proc.stderr
    assert "[stuck] failed" in proc.stdout and "timed out after 0.5s" in proc.stdout
