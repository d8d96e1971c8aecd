"""A run that fails before it starts (a bad ``events_jsonl``) closes what it opened, and says
what is wrong in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import chronum
from chronum.errors import ChronumError

FLOW = "name: f\nsteps:\n  - name: a\n    run: 'true'\n"


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")
@pytest.mark.parametrize("where", ["missing folder", "a folder"])
def test_50_failing_runs_leak_no_descriptor(where: str, tmp_path: Path) -> None:
    flow = tmp_path / "f.yaml"
    flow.write_text(FLOW)
    bad = tmp_path / "missing" / "events.jsonl" if where == "missing folder" else tmp_path
    db = tmp_path / "runs.db"
    with pytest.raises(ChronumError):  # warm up: imports and the first open
        chronum.run(flow, db=db, events_jsonl=bad)
    before = _fds()
    for _ in range(50):
        with pytest.raises(ChronumError, match="cannot write the events file"):
            chronum.run(flow, db=db, events_jsonl=bad)
    assert _fds() - before == 0


@pytest.mark.parametrize(("where", "reason"), [
    ("missing/e.jsonl", "no such file or directory; create the folder {tmp}/missing first"),
    (".", "is a directory; give a file name, not a folder")])
def test_cli_says_it_in_one_line(where: str, reason: str, tmp_path: Path) -> None:
    reason = reason.format(tmp=tmp_path)
    (tmp_path / "f.yaml").write_text(FLOW)
    env = {**os.environ, "CHRONUM_DB": str(tmp_path / "runs.db")}
    out = subprocess.run([sys.executable, "-m", "chronum", "run", "f.yaml", "--events-jsonl",
                          where], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode != 0
    assert out.stderr.splitlines() == [
        f"chronum: error: cannot write the events file {where}: {reason}"], out.stderr
