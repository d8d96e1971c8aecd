"""Frames of many runs (``flow=``, ``since=``, ``until=``, ``status=``) and ``compare``."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

import chronum
from chronum.errors import UsageError

FLOW = """name: {name}
steps:
  - name: prep
    run: {prep}
  - name: work
    run: {work}
    needs: [prep]
"""


def _run(tmp_path: Path, name: str, prep: str = "echo ok", work: str = "echo ok") -> chronum.Run:
    path = tmp_path / f"{name}.yaml"
    path.write_text(FLOW.format(name=name, prep=prep, work=work))
    return chronum.run(path, db=tmp_path / "db.sqlite")


@pytest.fixture
def three(tmp_path: Path) -> tuple[Path, list[chronum.Run]]:
    runs = [_run(tmp_path, "etl"), _run(tmp_path, "etl", work="exit 3"),
            _run(tmp_path, "other")]
    return tmp_path / "db.sqlite", runs


def test_without_arguments_frames_keep_their_one_run_meaning(three):
    db, runs = three
    assert set(chronum.steps(db=db)["run_id"]) == {runs[2].run_id}
    assert "flow" not in chronum.steps(db=db).columns


def test_flow_selects_every_run_of_that_flow_oldest_first_with_a_flow_column(three):
    db, runs = three
    frame = chronum.steps(flow="etl", db=db)
    assert list(frame.columns[:3]) == ["run_id", "flow", "step"]
    assert list(frame["run_id"]) == [runs[0].run_id] * 2 + [runs[1].run_id] * 2
    assert set(frame["flow"]) == {"etl"}
    assert list(frame["status"]) == ["succeeded", "succeeded", "succeeded", "failed"]


def test_status_selects_runs_by_their_status(three):
    db, runs = three
    attempts = chronum.attempts(status="failed", db=db)
    assert set(attempts["run_id"]) == {runs[1].run_id}
    failed = attempts[attempts["step"] == "work"]
    assert list(failed["reason"]) == ["exited with code 3"]
    assert chronum.history(status="failed", db=db)["run_id"].tolist() == [runs[1].run_id]
    assert chronum.history(flow="other", db=db)["run_id"].tolist() == [runs[2].run_id]


def test_since_and_until_bound_the_start_time(three):
    db, _runs = three
    assert len(chronum.steps(since=timedelta(hours=1), db=db)) == 6
    assert len(chronum.steps(until=time.time() - 3600, db=db)) == 0
    empty = chronum.steps(since="2999-01-01", db=db)
    assert len(empty) == 0 and list(empty.columns[:2]) == ["run_id", "flow"]
    with pytest.raises(UsageError, match="cannot read 'yesterday' as a time"):
        chronum.steps(since="yesterday", db=db)


def test_events_split_their_data_into_columns_and_keep_the_dict(three):
    db, runs = three
    events = chronum.events(runs[1].run_id, db=db)
    failed = events[events["kind"] == "step.failed"].iloc[0]
    assert failed["exit_code"] == 3 and failed["reason"] == "exited with code 3"
    assert failed["data"]["exit_code"] == 3
    many = chronum.events(flow="etl", db=db)
    assert set(many["run_id"]) == {runs[0].run_id, runs[1].run_id}


def test_compare_gives_one_row_per_step_with_both_runs_and_the_difference(tmp_path):
    fast = _run(tmp_path, "etl")
    slow = _run(tmp_path, "etl", work="sleep 0.3", prep="exit 1")
    table = chronum.compare(fast, slow)
    assert list(table.columns) == ["step", "status_a", "status_b", "duration_a_s",
                                   "duration_b_s", "attempts_a", "attempts_b",
                                   "duration_diff_s", "attempts_diff", "status_changed"]
    assert list(table["step"]) == ["prep", "work"]
    assert list(table["status_a"]) == ["succeeded", "succeeded"]
    assert list(table["status_b"]) == ["failed", "upstream_failed"]
    assert list(table["status_changed"]) == [True, True]
    assert table.loc[0, "duration_diff_s"] == pytest.approx(
        table.loc[0, "duration_b_s"] - table.loc[0, "duration_a_s"])
    # By id (a prefix works too), the second run defaulting to the latest.
    again = chronum.compare(fast.run_id, db=tmp_path / "db.sqlite")
    assert list(again["status_b"]) == ["failed", "upstream_failed"]
