"""The one fold from events to run and step state (``chronum.state``)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import chronum
from chronum.eventbus import (
    EventBus,
    RunFinished,
    RunStarted,
    StepCached,
    StepCancelled,
    StepFailed,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepSucceeded,
)
from chronum.state import RunState


def _run(*events: object) -> RunState:
    state = RunState.new("r", ("a", "b", "c"))
    for event in events:
        state.apply(event)  # type: ignore[arg-type]
    return state


def test_a_retried_step_keeps_its_first_start_and_counts_attempts():
    state = _run(
        RunStarted(run_id="r", at=1.0, flow="f", steps=("a", "b", "c"), max_parallel=2),
        StepStarted(run_id="r", at=2.0, step="a", attempt=1),
        StepRetrying(run_id="r", at=3.0, step="a", attempt=1, exit_code=7, reason="exit 7"),
        StepStarted(run_id="r", at=4.0, step="a", attempt=2, delay_s=1.0),
    )
    a = state.steps["a"]
    assert (a.status, a.attempts, a.started_at, a.exit_code, a.reason) == (
        "running", 2, 2.0, None, None)
    assert a.current is not None and (a.current.attempt, a.current.delay_s) == (2, 1.0)
    assert state.active() == ["a"] and state.max_parallel == 2
    state.apply(StepSucceeded(run_id="r", at=6.5, step="a", attempt=2, exit_code=0))
    assert (a.status, a.finished_at, a.duration_s, a.current.status) == (
        "succeeded", 6.5, 4.5, "succeeded")


def test_counts_follow_every_transition_and_done_counts_final_states():
    state = _run(StepStarted(run_id="r", step="a", attempt=1),
                 StepFailed(run_id="r", step="a", attempt=1, exit_code=1, reason="boom"),
                 StepSkipped(run_id="r", step="b", status="upstream_failed", reason="needs a"),
                 StepCached(run_id="r", step="c", from_run="old"))
    assert state.counts == {"pending": 0, "running": 0, "failed": 1, "upstream_failed": 1,
                            "cached": 1}
    assert state.done == 3
    assert state.steps["a"].reason == "boom"
    assert state.steps["c"].reason == "kept from run old"
    assert state.steps["c"].cached_from == "old"


def test_a_cancelled_step_and_the_run_finish():
    state = _run(StepStarted(run_id="r", at=1.0, step="b", attempt=1),
                 StepCancelled(run_id="r", at=2.0, step="b", attempt=1, reason="run cancelled"),
                 RunFinished(run_id="r", at=3.0, status="cancelled", duration_s=2.0))
    assert state.steps["b"].status == "cancelled"
    assert (state.status, state.finished_at, state.duration_s) == ("cancelled", 3.0, 2.0)


def test_an_event_for_a_step_outside_the_run_is_a_key_error():
    with pytest.raises(KeyError):
        _run(StepStarted(run_id="r", step="zzz", attempt=1))


def test_the_store_and_a_live_fold_of_the_same_run_agree(tmp_path: Path):
    (tmp_path / "flow.yaml").write_text(
        "name: agree\nmaxParallel: 2\nsteps:\n"
        "  - {name: a, run: 'echo a'}\n"
        "  - {name: b, run: 'exit 3', retry: {limit: 1, backoff: {base: 0}}}\n"
        "  - {name: c, run: 'echo c', needs: [b]}\n"
        "  - {name: d, run: 'true', needs: [a]}\n")
    live: list[RunState] = []

    def fold(event: object) -> None:
        if isinstance(event, RunStarted):
            live.append(RunState.new(event.run_id, event.steps))
        live[-1].apply(event)  # type: ignore[arg-type]

    run = chronum.run(tmp_path / "flow.yaml", db=tmp_path / "c.db", subscribers=[fold])
    stored = chronum.steps(run.run_id, db=tmp_path / "c.db").set_index("step")
    (state,) = live
    assert state.status == run.status == "failed"
    for name, step in state.steps.items():
        row = stored.loc[name]
        assert (step.status, step.attempts) == (row["status"], row["attempts"]), name
        assert (step.reason or None) == (None if row["reason"] != row["reason"] else
                                         row["reason"] or None), name


def test_a_raising_subscriber_is_reported_on_the_chronum_logger(caplog):
    bus = EventBus()

    def broken(event: object) -> None:
        raise ValueError("boom")

    bus.subscribe(broken)
    with caplog.at_level(logging.WARNING, logger="chronum"):
        bus.emit(RunStarted(run_id="r"))
        bus.emit(RunStarted(run_id="r"))  # detached: reported once
    (record,) = caplog.records
    assert record.name == "chronum" and "ValueError: boom" in record.getMessage()
    assert "detached" in record.getMessage()
