"""The resume rows of the reliability suite at small sizes (``make reliability``: full)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.resume import (
    check_concurrent_resumes,
    check_orphan_overlap,
    check_resume_exactness,
)


def test_no_recorded_success_runs_again_over_kill_and_resume_cycles(tmp_path: Path) -> None:
    got = {f.what: f.figure for f in check_resume_exactness(tmp_path, cycles=4, n_steps=50)}
    assert got["steps recorded succeeded or cached that ran again"] == "0"


@pytest.mark.parametrize("n", [2, 4])
def test_concurrent_resumes_run_the_rest_once(tmp_path: Path, n: int) -> None:
    (figure,) = check_concurrent_resumes(tmp_path, n)
    assert figure.figure == f"0 / 1 of {n}"


def test_no_step_overlaps_its_killed_copy(tmp_path: Path) -> None:
    got = check_orphan_overlap(tmp_path, kills=1, width=4)
    assert got[-1].figure == "0 of 4 / 0"
