"""A container whose runner was killed with -9 is removed before its step runs again on resume
(issue 11, A4), or named by ``--no-kill``."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from docker_engine import Engine


def _recorded(db: Path) -> str | None:
    if not db.exists():
        return None
    con = sqlite3.connect(db)
    try:
        row = con.execute("select container from attempts where container is not null"
                          ).fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        con.close()
    return row[0] if row else None


def test_resume_removes_the_killed_run_s_container_first(engine: Engine, tmp_path: Path):
    db = tmp_path / "runs.db"
    env = {**engine.env(), "CHRONUM_DB": str(db)}
    (tmp_path / "flow.yaml").write_text(
        "name: boxed\nsteps:\n  - name: c\n    executor: docker\n"
        f"    image: {engine.image}\n    pull: never\n"
        "    run: echo started >> ran.txt; test -e fast || sleep 60; echo done >> ran.txt\n")

    def chronum(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "chronum", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    proc = subprocess.Popen([sys.executable, "-m", "chronum", "run", "flow.yaml", "-q"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    ran = tmp_path / "ran.txt"
    while not (ran.exists() and _recorded(db)):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    name = _recorded(db)
    assert name is not None and name in engine.containers()
    refused = chronum("resume", "last", "--no-kill", "-q")
    assert refused.returncode == 2 and f"container {name}" in refused.stderr, refused.stderr
    (tmp_path / "fast").touch()
    resumed = chronum("resume", "last", "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert f"container {name}" in resumed.stderr
    assert name not in engine.containers()
    assert ran.read_text().split() == ["started", "started", "done"]
