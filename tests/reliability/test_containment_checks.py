"""The reliability suite's process and descriptor checks at small sizes (``make reliability``
runs them at full size): real runners, real process trees, real signals."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from reliability.containment import (
    check_detached_trees,
    check_error_path_descriptors,
    check_fatal_signals,
    check_runner_sigkill,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")


def test_timeout_set_m_and_setsid_trees_leave_nothing(tmp_path: Path) -> None:
    (figure,) = check_detached_trees(tmp_path, rounds=1)
    assert figure.figure == "0 of 12"


def test_fatal_signals_stop_the_steps_and_record_cancelled(tmp_path: Path) -> None:
    (figure,) = check_fatal_signals(tmp_path, ["SIGHUP", "SIGUSR1", "SIGXCPU"])
    assert figure.figure == "0 of 16 (4 signals)"


def test_a_runner_killed_with_sigkill_leaves_nothing(tmp_path: Path) -> None:
    (figure,) = check_runner_sigkill(tmp_path, rounds=1)
    assert figure.figure.endswith("0 of 4 left")


def test_runs_failing_before_they_start_leak_no_descriptor(tmp_path: Path) -> None:
    (figure,) = check_error_path_descriptors(tmp_path, calls=50)
    assert figure.figure == "0"
