"""The DataFrame views: exactly the documented columns, in order, with pinned dtypes."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import chronum.eventbus as ev
from chronum.errors import RunNotFoundError
from chronum.model import RUN_STATES, STEP_STATES, Flow
from chronum.store import (
    Store,
    attempts_frame,
    events_frame,
    history_frame,
    steps_frame,
    to_json_rows,
)

from .conftest import failed_run_events, feed

TS = "datetime64[us, UTC]"
TEXT = str(pd.Series(["x"], dtype="str").dtype)
STEP_CAT = pd.CategoricalDtype(list(STEP_STATES))
RUN_CAT = pd.CategoricalDtype(list(RUN_STATES))

HISTORY = {"run_id": TEXT, "flow": TEXT, "status": RUN_CAT, "started_at": TS,
           "finished_at": TS, "duration_s": "float64", "n_steps": "int64", "n_failed": "int64",
           "parent_run_id": TEXT, "n_continued": "int64"}
STEPS = {"run_id": TEXT, "step": TEXT, "status": STEP_CAT, "attempts": "int64",
         "exit_code": "Int64", "started_at": TS, "finished_at": TS, "duration_s": "float64",
         "reason": TEXT, "cache_key": TEXT, "item": TEXT}
ATTEMPTS = {"run_id": TEXT, "step": TEXT, "attempt": "int64", "status": STEP_CAT,
            "exit_code": "Int64", "started_at": TS, "finished_at": TS, "duration_s": "float64",
            "delay_s": "float64", "reason": TEXT}
EVENTS = {"seq": "int64", "at": TS, "kind": TEXT, "step": TEXT, "attempt": "Int64",
          "data": "object", "status": TEXT, "exit_code": "Int64", "reason": TEXT,
          "delay_s": "float64", "duration_s": "float64", "executor": TEXT, "from_run": TEXT,
          "n_failed": "Int64"}


def _dtypes(frame: pd.DataFrame) -> dict[str, object]:
    return {name: frame[name].dtype for name in frame.columns}


def _expected(spec: dict[str, object]) -> dict[str, object]:
    return {name: pd.api.types.pandas_dtype(d) if isinstance(d, str) else d
            for name, d in spec.items()}


@pytest.fixture
def recorded(store: Store, flow: Flow) -> Store:
    store.begin_run("r1", flow)
    feed(store, *failed_run_events("r1"))
    store.flush()
    return store


@pytest.mark.parametrize(
    ("view", "spec"),
    [(lambda s: history_frame(s), HISTORY), (lambda s: steps_frame(s), STEPS),
     (lambda s: attempts_frame(s), ATTEMPTS), (lambda s: events_frame(s, "r1"), EVENTS)],
    ids=["history", "steps", "attempts", "events"],
)
def test_columns_and_dtypes(recorded: Store, view: object, spec: dict[str, object]) -> None:
    frame = view(recorded)  # type: ignore[operator]
    assert list(frame.columns) == list(spec)
    assert _dtypes(frame) == _expected(spec)
    assert len(frame) > 0


@pytest.mark.parametrize(
    ("view", "spec"),
    [(lambda s: history_frame(s), HISTORY), (lambda s: steps_frame(s, "bare"), STEPS),
     (lambda s: attempts_frame(s, "bare"), ATTEMPTS), (lambda s: events_frame(s, "bare"), EVENTS)],
    ids=["history", "steps", "attempts", "events"],
)
def test_empty_frames_keep_columns_and_dtypes(store: Store, flow: Flow, view: object,
                                              spec: dict[str, object]) -> None:
    if spec is not HISTORY:
        store.begin_run("bare", Flow(name="empty", steps=()))
    frame = view(store)  # type: ignore[operator]
    assert len(frame) == 0
    assert list(frame.columns) == list(spec)
    assert _dtypes(frame) == _expected(spec)


def test_values(recorded: Store) -> None:
    steps = steps_frame(recorded)
    assert steps["status"].tolist() == ["succeeded", "failed", "upstream_failed", "succeeded"]
    assert steps["exit_code"].tolist() == [0, 2, pd.NA, 0]
    assert steps["duration_s"].tolist()[:2] == [1.0, 4.0]
    assert pd.isna(steps["duration_s"][2]) and pd.isna(steps["started_at"][2])
    assert steps["started_at"][0] == pd.Timestamp(1_700_000_001, unit="s", tz="UTC")
    assert steps["run_id"].tolist() == ["r1"] * 4
    attempts = attempts_frame(recorded, "r1")
    assert attempts["delay_s"].tolist() == [0.0, 0.0, 0.5, 0.0]
    events = events_frame(recorded, "r1")
    assert events["seq"].tolist() == list(range(1, 12))
    assert events["attempt"].tolist()[:2] == [pd.NA, 1]
    assert events["data"][len(events) - 1]["status"] == "failed"
    history = history_frame(recorded)
    assert (history["status"].tolist(), history["n_failed"].tolist()) == (["failed"], [1])


def test_steps_frame_without_runs_says_so(store: Store) -> None:
    with pytest.raises(RunNotFoundError, match="no runs recorded yet"):
        steps_frame(store)


def test_to_json_rows_turns_times_into_iso_utc(recorded: Store) -> None:
    rows = to_json_rows(recorded.history())
    assert rows[0]["finished_at"] == "2023-11-14T22:13:29.000+00:00"
    run = to_json_rows([recorded.run("r1")])[0]
    assert run["steps"][0]["started_at"] == "2023-11-14T22:13:21.000+00:00"
    assert run["steps"][2]["started_at"] is None
    assert run["steps"][0]["duration_s"] == 1.0
    json.dumps(run)  # serializable as is


def _reference(rows: list[dict[str, object]], spec: dict[str, object]) -> pd.DataFrame:
    """The frame built the plain way, one documented dtype per column from the store's dicts:
    what the column-wise shortcuts of ``frames`` must give exactly."""
    columns = {}
    for name, dtype in _expected(spec).items():
        values = [row[name] for row in rows]
        if dtype == pd.api.types.pandas_dtype(TS):
            floats = pd.Series(values, dtype="float64")
            columns[name] = pd.to_datetime(floats, unit="s", utc=True).astype(TS)
        else:
            columns[name] = pd.Series(values, dtype=dtype)  # type: ignore[call-overload]
    return pd.DataFrame(columns)


def test_frames_equal_the_plain_build_from_the_store_s_rows(recorded: Store) -> None:
    steps = steps_frame(recorded, "r1")
    pd.testing.assert_frame_equal(steps, _reference(recorded.steps("r1"), STEPS))
    attempts = attempts_frame(recorded, "r1")
    pd.testing.assert_frame_equal(attempts, _reference(recorded.attempts("r1"), ATTEMPTS))
    history = history_frame(recorded)
    pd.testing.assert_frame_equal(history, _reference(recorded.history(), HISTORY))


def test_columns_missing_on_every_step_are_still_there_and_typed(store: Store,
                                                                 flow: Flow) -> None:
    """A run that has only begun: every step pending, so exit codes, times, reasons, cache
    keys and items are missing on every row, and the frame still has them all."""
    store.begin_run("fresh", flow)
    store.flush()
    steps = steps_frame(store, "fresh")
    assert list(steps.columns) == list(STEPS)
    assert _dtypes(steps) == _expected(STEPS)
    assert steps["run_id"].tolist() == ["fresh"] * 4
    assert steps["step"].tolist() == ["build", "test", "deploy", "lint"]
    for name in ("exit_code", "started_at", "finished_at", "duration_s", "reason",
                 "cache_key", "item"):
        assert steps[name].isna().all(), name
    pd.testing.assert_frame_equal(steps, _reference(store.steps("fresh"), STEPS))


@pytest.mark.parametrize("exit_code", [-9, 2**40], ids=["signal", "beyond-32-bits"])
def test_numbers_of_every_sign_and_size_survive_the_steps_frame(store: Store, flow: Flow,
                                                                exit_code: int) -> None:
    """A killed step's negative exit code, a missing one, one beyond 32 bits: the numbers
    read straight into arrays give the same frame as the plain build."""
    t0 = 1_700_000_000.0
    store.begin_run("odd", flow)
    feed(store,
         ev.RunStarted(run_id="odd", at=t0, flow="deploy-api",
                       steps=("build", "test", "deploy", "lint")),
         ev.StepStarted(run_id="odd", at=t0 + 1, step="build", attempt=1),
         ev.StepFailed(run_id="odd", at=t0 + 2, step="build", attempt=1, exit_code=exit_code,
                       reason="killed"),
         ev.StepStarted(run_id="odd", at=t0 + 3, step="lint", attempt=1),
         ev.StepSucceeded(run_id="odd", at=t0 + 4.5, step="lint", attempt=1),
         ev.RunFinished(run_id="odd", at=t0 + 5, status="failed", n_failed=1))
    store.flush()
    steps = steps_frame(store, "odd")
    pd.testing.assert_frame_equal(steps, _reference(store.steps("odd"), STEPS))
    assert steps["exit_code"].tolist() == [exit_code, pd.NA, pd.NA, 0]
    assert steps["attempts"].tolist() == [1, 0, 0, 1]
