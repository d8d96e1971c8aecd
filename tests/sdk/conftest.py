"""Pipelines written to a scratch folder and run by the real `chronum` command."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli.conftest import Chronum as Cli  # tests/ is on sys.path: its folders are packages

__all__ = ["Cli"]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)
