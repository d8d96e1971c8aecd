"""Pipelines written to a scratch folder and run by the real `chronum` command."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest


class Cli:
    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.db = cwd / "state" / "runs.db"
        self.env = {**os.environ, "CHRONUM_DB": str(self.db), "PYTHONUNBUFFERED": "1"}

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "chronum", *args]

    def __call__(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), cwd=self.cwd, env=self.env, text=True,
                              capture_output=True, timeout=60, **kw)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), cwd=self.cwd, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, name: str, text: str) -> Path:
        path = self.cwd / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)
