"""What a runner killed with -9 left running is stopped before its steps run again (issue 11,
A4), and `chronum cancel` records such a run cancelled (A5)."""

from __future__ import annotations

import re
import signal
import sqlite3

from tests.cli.conftest import Chronum, pid_alive, wait_for

# ``detach: allow``: the supervisor that stops a SIGKILLed runner's steps leaves a detached
# step running by design, so its process is what resume (or cancel) itself must stop.
FLOW = """
name: orphan
steps:
  - name: s
    detach: allow
    run: echo started >> ran.txt; test -e fast || sleep 60; echo finished >> ran.txt
"""


def _ran(chronum: Chronum) -> list[str]:
    path = chronum.cwd / "ran.txt"
    return path.read_text().split() if path.exists() else []


def _kill_9_mid_step(chronum: Chronum) -> int:
    """Start the run, kill -9 its runner while the step sleeps; return the step's pgid."""
    chronum.write("flow.yaml", FLOW)
    proc = chronum.popen("run", "flow.yaml", "-q")
    wait_for(lambda: _ran(chronum) == ["started"])
    wait_for(lambda: _pgid(chronum) is not None)
    proc.kill()
    proc.communicate()
    pgid = _pgid(chronum)
    assert pgid is not None and pid_alive(pgid)  # the orphan the runner left
    return pgid


def _pgid(chronum: Chronum, run: str | None = None) -> int | None:
    con = sqlite3.connect(chronum.db)
    try:
        row = con.execute("select pgid, proc_start from attempts where step = 's' and "
                          "run_id = coalesce(?, run_id) order by rowid desc",
                          (run,)).fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        con.close()
    if row is None or row[0] is None:
        return None
    assert row[1] and row[1].isdigit()  # the leader's start time, from /proc
    return int(row[0])


def test_resume_stops_the_dead_run_s_processes_before_the_step_runs_again(chronum: Chronum):
    pgid = _kill_9_mid_step(chronum)
    refused = chronum("resume", "last", "--no-kill", "-q")
    assert refused.returncode == 2
    assert re.search(rf"error: run \w+ step 's' attempt 1: process group {pgid} \(pids "
                     rf"{pgid}\b.*\) still running; stop them", refused.stderr), refused.stderr
    assert pid_alive(pgid)
    (chronum.cwd / "fast").touch()
    resumed = chronum("resume", "last", "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert re.search(rf"warning: stopping what was left running before run (\w+) resumes: run "
                     rf"\1 step 's' attempt 1: process group {pgid}", resumed.stderr)
    assert not pid_alive(pgid)
    assert _ran(chronum) == ["started", "started", "finished"]  # the orphan never finished


def test_cancel_stops_what_the_dead_runner_left_and_records_the_run_cancelled(
        chronum: Chronum):
    pgid = _kill_9_mid_step(chronum)
    done = chronum("cancel", "last")
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(rf"run \w+ cancelled; stopped step 's' attempt 1: process group "
                        rf"{pgid} \(pids [\d, ]+\)\n", done.stdout), done.stdout
    assert not pid_alive(pgid)
    shown = chronum.json("show", "last")
    assert shown["status"] == "cancelled" and shown["finished_at"]
    assert shown["steps"][0]["status"] == "cancelled"
    again = chronum("cancel", "last")
    assert again.returncode == 2 and "is cancelled; only a running" in again.stderr
    (chronum.cwd / "fast").touch()
    assert chronum("resume", "last", "-q").returncode == 0


def test_cancel_refuses_a_live_runner_and_needs_force_for_another_host(chronum: Chronum):
    chronum.write("flow.yaml", FLOW)
    proc = chronum.popen("run", "flow.yaml", "-q")
    try:
        wait_for(lambda: _ran(chronum) == ["started"])
        live = chronum("cancel", "last")
        assert live.returncode == 2
        assert f"is still running in process {proc.pid} on this host" in live.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate()
    con = sqlite3.connect(chronum.db)
    with con:
        con.execute("update runs set status = 'running', host = 'elsewhere', pid = 1")
    con.close()
    refused = chronum("cancel", "last")
    assert refused.returncode == 2 and "--force" in refused.stderr
    forced = chronum("cancel", "last", "--force")
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.endswith("anything it left running on host elsewhere was not "
                                  "stopped\n")
    assert chronum.json("show", "last")["status"] == "cancelled"


def test_resuming_again_stops_what_a_killed_earlier_resume_left(chronum: Chronum):
    chronum.write("flow.yaml", FLOW.replace("echo started >> ran.txt;",
                                            "echo started >> ran.txt; test -e go || exit 1;"))
    assert chronum("run", "flow.yaml", "-q").returncode == 1
    first = chronum.json("show", "last")["run_id"]
    (chronum.cwd / "go").touch()
    proc = chronum.popen("resume", first, "-q")
    wait_for(lambda: _ran(chronum) == ["started", "started"])
    wait_for(lambda: _pgid(chronum) is not None and chronum.json("show", "last")["run_id"]
             != first)
    killed = chronum.json("show", "last")["run_id"]
    wait_for(lambda: _pgid(chronum, killed) is not None)
    proc.kill()
    proc.communicate()
    pgid = _pgid(chronum, killed)
    assert pgid is not None and pid_alive(pgid)
    (chronum.cwd / "fast").touch()
    resumed = chronum("resume", first, "-q")  # the killed resume does not hold the run
    assert resumed.returncode == 0, resumed.stderr
    assert f"run {killed} step 's' attempt 1: process group {pgid}" in resumed.stderr
    assert not pid_alive(pgid)
    assert _ran(chronum) == ["started", "started", "started", "finished"]
