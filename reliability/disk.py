"""A full disk under the database and its logs: the run must fail with a clear message (no
traceback), the store must stay consistent, and once space is back the run resumes.

A small tmpfs stands in for the full disk, so the check needs root (``mount``); without it the
check says it did not run rather than pretending.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from ._common import Figure, Workspace, integrity

__all__ = ["check_full_disk"]

_FLOW = """name: fill
steps:
  - name: a
    run: echo before
  - name: flood
    run: yes 'a line of output that is about fifty bytes long....' | head -n {lines}
    needs: [a]
  - name: after
    run: echo after
    needs: [flood]
"""


@contextlib.contextmanager
def _small_disk(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True, capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def check_full_disk(work: Path, megabytes: int = 3) -> list[Figure]:
    """A step prints ``megabytes`` MB into a log on a 1 MB disk."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return [Figure("resources", "full disk", "not run (needs root to mount a tmpfs)")]
    ws = Workspace(work / "full-disk")
    lines = megabytes * 1_000_000 // 51
    ws.write("f.yaml", _FLOW.format(lines=lines))
    with _small_disk(ws.root / "disk", "1m") as disk:
        ws.db = disk / "c.db"
        ws.env["CHRONUM_DB"] = str(ws.db)
        ran = ws("run", "f.yaml", "-q", timeout=300)
        err = ran.stderr
        assert ran.returncode == 1, f"exit {ran.returncode}: {err[-500:]}"
        assert "Traceback" not in err, f"a traceback on a full disk: {err[:2000]}"
        assert "full" in err or "No space left" in err, err[-500:]
        assert len(err.splitlines()) <= 5, f"{len(err.splitlines())} lines of errors"
        assert integrity(ws.db) == "ok"
        # `chronum show` marks dead runs interrupted, a write: it needs space back first
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        shown = ws.json("show", "last")
        assert shown["status"] in ("failed", "interrupted"), shown["status"]
        assert shown["steps"][0]["status"] == "succeeded", shown["steps"]
        resumed = ws("resume", "last", "-q", timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-500:]
        message = err.strip().splitlines()[-1]
    return [Figure("resources", "full disk (1 MB tmpfs under the database and logs): run "
                   "fails clearly, store ok, resume completes once space is back",
                   f"exit 1: {message.rsplit(': ', 1)[-1]}")]
