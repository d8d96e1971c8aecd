"""States that tell the truth at the edges: a step in its backoff when the run stops, an
observer that fails, a log that cannot be written, a cut log tail, a database removed mid-run.

Every run here is the real ``chronum`` command in a subprocess on a real SQLite file.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.cli.conftest import Chronum

BACKOFF_FLOW = """
    name: f
    stopOnFail: {stop}
    maxParallel: 2
    steps:
      - name: flaky
        run: exit 1
        retry: {{limit: 3, backoff: {{base: 60, jitter: none}}}}
      - name: other
        run: {other}
"""


def _step_row(db: Path, step: str) -> tuple[str, float | None]:
    con = sqlite3.connect(db)
    try:
        status, finished = con.execute(
            "SELECT status, finished_at FROM steps WHERE step = ?", (step,)).fetchone()
        kinds = [k for (k,) in con.execute(
            "SELECT kind FROM events WHERE step = ? ORDER BY seq", (step,))]
    finally:
        con.close()
    assert kinds[-1] == "step.cancelled", kinds
    return status, finished


def test_a_step_in_its_backoff_ends_cancelled_when_stop_on_fail_stops_the_run(
        chronum: Chronum):
    chronum.write("flow.yaml", BACKOFF_FLOW.format(stop="true", other="sleep 0.5; exit 2"))
    started = time.monotonic()
    proc = chronum("run", "flow.yaml")
    assert time.monotonic() - started < 30  # not the 60 s backoff
    assert proc.returncode == 1, proc.stderr
    status, finished = _step_row(chronum.db, "flaky")
    assert status == "cancelled" and finished is not None


def test_a_step_in_its_backoff_ends_cancelled_when_the_run_is_cancelled(chronum: Chronum):
    chronum.write("flow.yaml", BACKOFF_FLOW.format(stop="false", other="sleep 60"))
    proc = chronum.popen("run", "flow.yaml")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if not chronum.db.exists():
                continue
            con = sqlite3.connect(chronum.db)
            try:
                row = con.execute("SELECT status FROM steps WHERE step = 'flaky'").fetchone()
            except sqlite3.Error:
                row = None
            finally:
                con.close()
            if row and row[0] == "retrying":
                break
        else:
            pytest.fail("the step never reached its backoff")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 130
    status, finished = _step_row(chronum.db, "flaky")
    assert status == "cancelled" and finished is not None


# -- 7. an observer that fails is reported once, and the run's outcome stands ---------------

needs_dev_full = pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")


@needs_dev_full
@pytest.mark.parametrize("lines", [1, 3000], ids=["fails-while-closing", "fails-mid-run"])
def test_an_events_file_on_a_full_disk_is_reported_once_and_the_run_stands(
        chronum: Chronum, lines: int):
    chronum.write("flow.yaml", f"""
        name: f
        steps:
          - name: talk
            run: for i in $(seq {lines}); do echo "line $i of some output"; done
    """)
    proc = chronum("run", "flow.yaml", "--events-jsonl", "/dev/full")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "/dev/full" in line]
    assert warnings == [warnings[0]], proc.stderr
    assert warnings[0].startswith("chronum: warning: the events file /dev/full: disk full")
    assert "object at 0x" not in proc.stderr
    assert _run_status(chronum.db) == "succeeded"


def test_a_failing_run_with_a_broken_events_file_still_exits_1(chronum: Chronum):
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    chronum.write("flow.yaml", """
        name: f
        steps:
          - name: bad
            run: exit 3
    """)
    proc = chronum("run", "flow.yaml", "--events-jsonl", "/dev/full")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def _run_status(db: Path) -> str:
    con = sqlite3.connect(db)
    try:
        return str(con.execute("SELECT status FROM runs").fetchone()[0])
    finally:
        con.close()


# -- 8. a log that cannot be written fails its step, with the reason -------------------------


def test_a_log_write_failure_fails_that_step_and_the_run_is_recorded(chronum: Chronum):
    import resource

    limit = 1 << 20  # the step's log may grow to 1 MiB; the database stays far smaller

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    chronum.write("flow.yaml", """
        name: f
        steps:
          - name: loud
            run: |
              line=$(head -c 20000 /dev/zero | tr '\\0' x)
              for i in $(seq 200); do echo "$line"; done
          - name: quiet
            run: echo fine
    """)
    proc = chronum("run", "flow.yaml", preexec_fn=small_files)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    con = sqlite3.connect(chronum.db)
    try:
        rows = dict((s, (st, r)) for s, st, r in con.execute(
            "SELECT step, status, reason FROM steps"))
        run_status = con.execute("SELECT status FROM runs").fetchone()[0]
    finally:
        con.close()
    status, reason = rows["loud"]
    assert status == "failed", rows
    assert "log" in reason and "too large" in reason.lower(), reason
    assert rows["quiet"][0] == "succeeded", rows
    assert run_status == "failed"


# -- 10. a database removed during the run is noticed ----------------------------------------


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_database_removed_or_replaced_mid_run_fails_the_run_loudly(chronum: Chronum,
                                                                     how: str):
    chronum.write("flow.yaml", """
        name: f
        steps:
          - name: first
            run: sleep 0.5
          - name: second
            needs: [first]
            run: sleep 1
    """)
    proc = chronum.popen("run", "flow.yaml")
    deadline = time.monotonic() + 30
    while not chronum.db.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{chronum.db}{suffix}").unlink(missing_ok=True)
    if how == "replaced":
        chronum.db.write_bytes(b"")  # a new file where the old one was
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, err
    assert "Traceback" not in err
    assert ("the database file was removed or replaced during the run; this run's record "
            "is lost") in err
    assert len([line for line in err.splitlines() if line.startswith("chronum: error")]) == 1
