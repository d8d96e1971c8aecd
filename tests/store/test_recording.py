"""Events in, rows out: what record()/flush() write for each kind of event."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import chronum.eventbus as ev
from chronum.errors import StoreError
from chronum.model import Flow
from chronum.store import Store, resolve_db_path

from .conftest import failed_run_events, feed


def test_begin_run_commits_the_run_and_pending_steps_at_once(store: Store, db_path: Path,
                                                              flow: Flow) -> None:
    store.begin_run("r1", flow, params={"region": "us"})
    # Another connection sees it without any flush: begin_run committed.
    other = sqlite3.connect(db_path)
    run = other.execute("SELECT flow, status, n_steps, params, source, pid FROM runs").fetchone()
    steps = other.execute("SELECT step, position, status FROM steps ORDER BY position").fetchall()
    other.close()
    assert run[:5] == ("deploy-api", "running", 4, '{"region":"us"}', "flow.yaml")
    assert isinstance(run[5], int)
    assert steps == [("build", 0, "pending"), ("test", 1, "pending"),
                     ("deploy", 2, "pending"), ("lint", 3, "pending")]


def test_record_buffers_until_flush(store: Store, db_path: Path, flow: Flow) -> None:
    store.begin_run("r1", flow)
    feed(store, *failed_run_events("r1")[:4])
    other = sqlite3.connect(db_path)
    assert other.execute("SELECT COUNT(*) FROM events").fetchone() == (0,)
    store.flush()
    assert other.execute("SELECT COUNT(*) FROM events").fetchone() == (3,)  # no log rows
    other.close()


def test_a_failed_run_with_a_retry(store: Store, flow: Flow) -> None:
    t0 = 1_700_000_000.0
    store.begin_run("r1", flow)
    feed(store, *failed_run_events("r1", t0))
    store.flush()

    steps = store.steps("r1")
    assert [(s["step"], s["status"], s["attempts"], s["exit_code"], s["reason"])
            for s in steps] == [
        ("build", "succeeded", 1, 0, None),
        ("test", "failed", 2, 2, "exit code 2"),
        ("deploy", "upstream_failed", 0, None, "needs test, which failed"),
        ("lint", "succeeded", 1, 0, None),
    ]
    test = steps[1]
    assert set(test) == {"run_id", "step", "status", "attempts", "exit_code", "started_at",
                         "finished_at", "duration_s", "reason", "cache_key", "item"}
    assert (test["started_at"], test["finished_at"], test["duration_s"]) == (t0 + 3, t0 + 7, 4.0)
    assert steps[2]["started_at"] is None and steps[2]["duration_s"] is None

    assert [(a["step"], a["attempt"], a["status"], a["exit_code"], a["duration_s"], a["delay_s"])
            for a in store.attempts("r1")] == [
        ("build", 1, "succeeded", 0, 1.0, 0.0),
        ("test", 1, "failed", 1, 1.0, 0.0),
        ("test", 2, "failed", 2, 2.0, 0.5),
        ("lint", 1, "succeeded", 0, 0.25, 0.0),
    ]

    [row] = store.history()
    assert row == {"run_id": "r1", "flow": "deploy-api", "status": "failed",
                   "started_at": row["started_at"], "finished_at": t0 + 9,
                   "duration_s": row["duration_s"], "n_steps": 4, "n_failed": 1,
                   "parent_run_id": None, "n_continued": 0}


def test_events_are_numbered_per_run_and_logs_are_not_events(store: Store, flow: Flow) -> None:
    store.begin_run("r1", flow)
    store.begin_run("r2", flow)
    for a, b in zip(failed_run_events("r1"), failed_run_events("r2"), strict=True):
        feed(store, a, b)
    store.flush()
    events = store.events("r2")
    assert [e["seq"] for e in events] == list(range(1, 12))
    assert "step.log" not in {e["kind"] for e in events}
    retry = next(e for e in events if e["kind"] == "step.retrying")
    assert retry == {"seq": 5, "at": 1_700_000_004.0, "kind": "step.retrying", "step": "test",
                     "attempt": 1, "data": {"exit_code": 1, "delay_s": 0.5,
                                            "reason": "exit code 1"}}
    assert events[0]["data"]["steps"] == ["build", "test", "deploy", "lint"]


def test_run_dict_and_resume_links(store: Store, flow: Flow) -> None:
    store.begin_run("r1", flow)
    feed(store, *failed_run_events("r1"))
    store.begin_run("r2", flow, parent_run_id="r1")
    feed(store,
         ev.StepCached(run_id="r2", step="build", from_run="r1"),
         ev.StepCached(run_id="r2", step="lint", from_run="r1"),
         ev.StepStarted(run_id="r2", step="test", attempt=1),
         ev.StepCancelled(run_id="r2", step="test", attempt=1, exit_code=-15,
                          reason="stopOnFail"),
         ev.StepSkipped(run_id="r2", step="deploy", reason="the run was stopped"),
         ev.RunFinished(run_id="r2", status="cancelled"))
    run = store.run("r2")
    assert list(run) == ["run_id", "flow", "status", "started_at", "finished_at", "duration_s",
                         "parent_run_id", "params", "source", "origin", "reason",
                         "n_continued", "steps"]
    assert (run["status"], run["parent_run_id"], run["params"], run["source"], run["origin"]) == (
        "cancelled", "r1", {"region": "eu"}, "flow.yaml", None)
    assert [(s["step"], s["status"], s["reason"]) for s in run["steps"]] == [
        ("build", "cached", "kept from run r1"),
        ("test", "cancelled", "stopOnFail"),
        ("deploy", "skipped", "the run was stopped"),
        ("lint", "cached", "kept from run r1"),
    ]
    rows = {r["step"]: r for r in store.step_rows("r2")}
    assert rows["build"]["cached_from"] == "r1"
    assert [a["status"] for a in store.attempts("r2")] == ["cancelled"]
    # The cached step's log is the one of the run that produced it.
    assert store.read_log("r2", "build") == "compiling\n"
    assert [h["run_id"] for h in store.history()] == ["r2", "r1"]


def test_logs_go_to_files_with_attempt_separators_and_a_tail(store: Store, db_path: Path,
                                                            flow: Flow) -> None:
    store.begin_run("r1", flow)
    feed(store, *failed_run_events("r1"))
    store.flush()
    path = store.log_path("r1", "test")
    assert path == db_path.parent / "logs" / "r1" / "test.log"
    assert store.read_log("r1", "test") == "E assert 1 == 2\n--- attempt 2 ---\nstill red\n"
    rows = {r["step"]: r for r in store.step_rows("r1")}
    assert rows["test"]["log_path"] == str(path)
    assert rows["test"]["log_tail"] == "E assert 1 == 2\n--- attempt 2 ---\nstill red"
    assert rows["lint"]["log_path"] is None and store.read_log("r1", "lint") == ""
    assert store.log_path("r1", "lint") is None


def test_log_is_readable_while_the_step_runs(store: Store, flow: Flow) -> None:
    store.begin_run("r1", flow)
    feed(store, ev.StepStarted(run_id="r1", step="build", attempt=1),
         ev.LogLine(run_id="r1", step="build", line="half way"))
    store.flush()
    path = store.log_path("r1", "build")
    assert path is not None and path.read_text() == "half way\n"


def test_tail_keeps_the_last_hundred_lines(store: Store, flow: Flow) -> None:
    store.begin_run("r1", flow)
    store.record(ev.StepStarted(run_id="r1", step="build", attempt=1))
    for i in range(250):
        store.record(ev.LogLine(run_id="r1", step="build", line=f"line {i}"))
    store.record(ev.StepSucceeded(run_id="r1", step="build", attempt=1))
    tail = store.step_rows("r1")[0]["log_tail"]
    assert tail.splitlines() == [f"line {i}" for i in range(150, 250)]
    assert len(store.read_log("r1", "build").splitlines()) == 250


def test_tail_is_at_most_16_kb(store: Store, flow: Flow) -> None:
    store.begin_run("r1", flow)
    store.record(ev.StepStarted(run_id="r1", step="build", attempt=1))
    for i in range(20):
        store.record(ev.LogLine(run_id="r1", step="build", line=f"{i:02d}" + "x" * 2000))
    store.record(ev.StepFailed(run_id="r1", step="build", attempt=1, exit_code=1))
    tail = store.step_rows("r1")[0]["log_tail"]
    assert len(tail) <= 16 * 1024
    assert tail.splitlines()[-1].startswith("19x") and not tail.startswith("00")


def test_a_second_store_on_the_same_file_continues_a_run(db_path: Path, flow: Flow) -> None:
    events = failed_run_events("r1")
    with Store(db_path) as first:
        first.begin_run("r1", flow)
        feed(first, *events[:5])
    with Store(db_path) as second:
        feed(second, *events[5:])
        assert [e["seq"] for e in second.events("r1")] == list(range(1, 12))
        assert second.steps("r1")[1]["attempts"] == 2


def test_unknown_step_and_unknown_run_are_store_errors(store: Store, flow: Flow) -> None:
    store.begin_run("r1", flow)
    with pytest.raises(StoreError, match="'nope' is not part of run 'r1'"):
        store.record(ev.StepStarted(run_id="r1", step="nope", attempt=1))
    with pytest.raises(StoreError, match="run 'ghost' was never begun"):
        store.record(ev.StepStarted(run_id="ghost", step="build", attempt=1))
    with pytest.raises(StoreError, match="run 'r1' already exists"):
        store.begin_run("r1", flow)


def test_memory_database_keeps_logs_in_a_temporary_folder(flow: Flow) -> None:
    with Store(":memory:") as store:
        store.begin_run("r1", flow)
        feed(store, *failed_run_events("r1"))
        assert store.read_log("r1", "build") == "compiling\n"
        path = store.log_path("r1", "build")
        assert path is not None
    assert not path.exists()


def test_resolve_db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHRONUM_DB", raising=False)
    assert resolve_db_path() == tmp_path / ".chronum" / "chronum.db"
    monkeypatch.setenv("CHRONUM_DB", "elsewhere.db")
    assert resolve_db_path() == Path("elsewhere.db")
    assert resolve_db_path(tmp_path / "given.db") == tmp_path / "given.db"
