"""What every check shares: running ``chronum`` in a subprocess, and the ``Figure`` row."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Figure", "Workspace", "integrity", "pid_alive", "wait_for"]


@dataclass(frozen=True)
class Figure:
    """One row of the table: which check, what it measured, and the figure."""

    check: str
    what: str
    figure: str


class Workspace:
    """A folder with its own flow files and database, and the ``chronum`` command on it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.db = root / ".chronum" / "chronum.db"
        self.env = {**os.environ, "CHRONUM_DB": str(self.db), "PYTHONUNBUFFERED": "1"}

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "chronum", *args]

    def __call__(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), cwd=self.root, env=self.env, text=True,
                              capture_output=True, timeout=timeout, check=False)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), cwd=self.root, env=self.env, text=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def json(self, *args: str) -> Any:
        proc = self(*args, "--format", "json")
        assert proc.returncode in (0, 1), proc.stderr
        return json.loads(proc.stdout)

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text)
        return path


def integrity(db: Path) -> str:
    con = sqlite3.connect(db)
    try:
        (result,) = con.execute("pragma integrity_check").fetchone()
    finally:
        con.close()
    return str(result)


def pid_alive(pid: int) -> bool:
    """Running and not a zombie (a zombie holds no resources but its table entry)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {timeout:g}s: {what}")
        time.sleep(0.002)
