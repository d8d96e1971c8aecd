"""Real processes: runners killed mid-run, and several writing one file at once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chronum.model import Flow
from chronum.store import Store

WORKER = Path(__file__).with_name("store_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _worker(db: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(WORKER), str(db), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.fixture
def hanging(db_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = _worker(db_path, "hang", "alive-run")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=30)


def _status(store: Store, run_id: str) -> str:
    return str(next(r["status"] for r in store.history() if r["run_id"] == run_id))


def test_a_run_of_a_live_process_stays_running(db_path: Path,
                                               hanging: subprocess.Popen[str]) -> None:
    with Store(db_path) as store:
        assert _status(store, "alive-run") == "running"
        assert store.run("alive-run")["status"] == "running"
        assert store.steps("alive-run")[0]["status"] == "running"


def test_a_run_whose_process_was_killed_is_interrupted(db_path: Path,
                                                       hanging: subprocess.Popen[str]) -> None:
    os.kill(hanging.pid, signal.SIGKILL)
    hanging.wait(timeout=30)
    with Store(db_path) as store:
        assert _status(store, "alive-run") == "interrupted"
        assert store.run("alive-run")["status"] == "interrupted"
        # Nothing was recorded as succeeded that did not succeed.
        assert [s["status"] for s in store.steps("alive-run")][:2] == ["running", "pending"]
    # Written back, so readers that do not sweep (the CLI's JSON, other tools) agree.
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT status FROM runs").fetchall() == [("interrupted",)]
    conn.close()


def test_a_reused_pid_does_not_keep_a_dead_run_running(store: Store, db_path: Path,
                                                       flow: Flow) -> None:
    """Same pid as a live process (ours), but another start token: the runner is gone."""
    store.begin_run("old", flow)
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE runs SET proc_token = 'started-long-ago'")
    conn.commit()
    conn.close()
    assert _status(store, "old") == ("interrupted" if Path("/proc/self/stat").exists()
                                     else "running")


def test_four_processes_write_one_file_at_once(db_path: Path) -> None:
    Store(db_path).close()  # created up front so the workers race on writes, not on creation
    runs_each = 8
    workers = [_worker(db_path, "write", f"w{i}", str(runs_each)) for i in range(4)]
    for proc in workers:
        out, err = proc.communicate(timeout=110)
        assert proc.returncode == 0, err
        assert out.strip() == "done"
        assert "locked" not in err
    with Store(db_path) as store:
        history = store.history()
        assert len(history) == 4 * runs_each
        assert {r["status"] for r in history} == {"succeeded"}
        for row in history:
            steps = store.steps(row["run_id"])
            assert [s["status"] for s in steps] == ["succeeded"] * 50
            assert [e["seq"] for e in store.events(row["run_id"])] == list(range(1, 103))
        assert store.read_log("w3-007", "s49") == "w3-007 s49\n"
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT COUNT(*) FROM attempts").fetchone() == (4 * runs_each * 50,)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
