"""The reliability suite's checks at small sizes (``make reliability`` runs them at full size).

Each check raises when its property breaks; these tests only run them. The sizes keep the
whole file under about 30 s on two cores; the time per fuzzed document is not asserted here
(no timing assertions in tests), only in the reliability run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability._common import Figure
from reliability.disk import check_full_disk
from reliability.fuzz import check_fuzz
from reliability.kernel import check_kernel_kill
from reliability.runs import check_concurrency, check_crashes, check_fan_in_crashes
from reliability.system import (
    check_big_output,
    check_descriptors_and_zombies,
    check_process_trees,
    check_read_only_database,
)


def _figures(figures: list[Figure]) -> dict[str, str]:
    assert figures and all(f.figure for f in figures)
    return {f.what: f.figure for f in figures}


def test_kill_9_at_three_random_moments(tmp_path: Path) -> None:
    # the check raises when a step ran twice that was not the one running at the kill
    got = _figures(check_crashes(tmp_path, kills=3, n_steps=60))
    assert got["steps recorded succeeded without their side effect"] == "0"


def test_kill_9_of_a_fan_in_flow_runs_again_only_what_was_running(tmp_path: Path) -> None:
    figures = check_fan_in_crashes(tmp_path, kills=3, groups=4)
    assert figures[0].figure == "3/3"
    assert int(figures[1].figure.split()[2].rstrip(";")) <= 4


def test_kill_9_of_a_kernel_during_a_chronum_cell(tmp_path: Path) -> None:
    figure, reruns = check_kernel_kill(tmp_path, kills=1, n_steps=40)
    assert figure.figure == "1/1"
    assert reruns.figure.startswith(("at most 0;", "at most 1;"))


def test_four_processes_on_one_database(tmp_path: Path) -> None:
    got = _figures(check_concurrency(tmp_path, n_procs=4, n_steps=50))
    assert got["'database is locked' errors"] == "0"


def test_no_process_outlives_a_timeout_or_ctrl_c(tmp_path: Path) -> None:
    (figure,) = check_process_trees(tmp_path, rounds=1)
    assert figure.figure == "0 of 9"


def test_no_descriptor_leak_and_no_zombies(tmp_path: Path) -> None:
    got = _figures(check_descriptors_and_zombies(tmp_path, n_steps=300))
    assert got["zombies left after 300 steps"] == "0"


def test_big_output_keeps_the_runner_small_and_the_log_whole(tmp_path: Path) -> None:
    # tests/cli/test_resilience.py prints 50 MB; 20 MB here checks the log is whole on disk
    got = _figures(check_big_output(tmp_path, megabytes=20, limit_mb=150))
    assert got["log lines on disk after that step"] == "384,615 of 384,615"


def test_a_read_only_database_fails_the_run_clearly(tmp_path: Path) -> None:
    (figure,) = check_read_only_database(tmp_path)
    assert "readonly" in figure.figure or "read-only" in figure.figure


def test_a_full_disk_fails_the_run_clearly_and_resume_completes(tmp_path: Path) -> None:
    (figure,) = check_full_disk(tmp_path)
    if figure.figure.startswith("not run"):
        pytest.skip(figure.figure)
    # the database or a log, whichever the disk refuses first, and what to do about it
    assert "the disk is full; free some space, then `chronum resume` the run" in figure.figure


def test_fuzz_of_the_spec_loader() -> None:
    got = _figures(check_fuzz(examples=100, limit_s=None))
    assert got[next(k for k in got if k.startswith("documents fuzzed"))].startswith("300,")
