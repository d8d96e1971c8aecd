"""Fixtures for the store tests: a small real flow, a store on a real file, event helpers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import chronum.eventbus as ev
from chronum.model import Flow, RetryPolicy, Step
from chronum.store import Store


@pytest.fixture
def flow() -> Flow:
    """build -> test (retried) -> deploy, plus an independent lint step."""
    return Flow(
        name="deploy-api",
        steps=(
            Step("build", run="make build"),
            Step("test", run="pytest", needs=("build",), retry=RetryPolicy(limit=2)),
            Step("deploy", run="./deploy.sh", needs=("test",)),
            Step("lint", run="ruff check ."),
        ),
        params={"region": "eu"},
        source="flow.yaml",
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "chronum.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with Store(db_path) as s:
        yield s


def feed(store: Store, *events: ev.Event) -> None:
    for event in events:
        store.record(event)


def failed_run_events(run_id: str, t0: float = 1_700_000_000.0) -> list[ev.Event]:
    """build ok; test fails once, is retried, fails again (final); deploy upstream_failed;
    lint succeeds. Times are fixed so durations are exact."""
    return [
        ev.RunStarted(run_id=run_id, at=t0, flow="deploy-api",
                      steps=("build", "test", "deploy", "lint")),
        ev.StepStarted(run_id=run_id, at=t0 + 1, step="build", attempt=1),
        ev.LogLine(run_id=run_id, at=t0 + 1.5, step="build", attempt=1, line="compiling"),
        ev.StepSucceeded(run_id=run_id, at=t0 + 2, step="build", attempt=1, duration_s=1.0),
        ev.StepStarted(run_id=run_id, at=t0 + 3, step="test", attempt=1),
        ev.LogLine(run_id=run_id, at=t0 + 3.5, step="test", attempt=1, stream="stderr",
                   line="E assert 1 == 2"),
        ev.StepRetrying(run_id=run_id, at=t0 + 4, step="test", attempt=1, exit_code=1,
                        delay_s=0.5, reason="exit code 1"),
        ev.StepStarted(run_id=run_id, at=t0 + 5, step="test", attempt=2, delay_s=0.5),
        ev.LogLine(run_id=run_id, at=t0 + 5.5, step="test", attempt=2, line="still red"),
        ev.StepFailed(run_id=run_id, at=t0 + 7, step="test", attempt=2, exit_code=2,
                      duration_s=2.0, reason="exit code 2"),
        ev.StepSkipped(run_id=run_id, at=t0 + 7, step="deploy", status="upstream_failed",
                       reason="needs test, which failed"),
        ev.StepStarted(run_id=run_id, at=t0 + 8, step="lint", attempt=1),
        ev.StepSucceeded(run_id=run_id, at=t0 + 8.25, step="lint", attempt=1),
        ev.RunFinished(run_id=run_id, at=t0 + 9, status="failed", n_failed=1),
    ]
