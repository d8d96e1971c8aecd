"""The public Python API against real subprocesses and a real SQLite file."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest

import chronum
from chronum.errors import RunFailedError


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "db" / "chronum.db"


def test_values_pass_between_python_steps_by_name(tmp_path: Path, db: Path):
    write(tmp_path, "steps.py", """
        def load():
            return [3, 1, 2]

        def clean(load):
            return sorted(load)

        async def report(clean, load):
            return {"n": len(load), "first": clean[0]}
    """)
    flow = write(tmp_path, "f.yaml", """
        name: values
        maxParallel: 2
        steps:
          - {name: load, executor: python, call: "steps:load"}
          - {name: clean, executor: python, call: "steps:clean", needs: [load]}
          - {name: report, executor: python, call: "steps:report", needs: [clean, load]}
    """)
    run = chronum.run(flow, db=db)
    assert run.status == "succeeded"
    assert run.outputs == {"load": [3, 1, 2], "clean": [1, 2, 3],
                           "report": {"n": 3, "first": 1}}
    assert run.raise_for_status() is run


def test_dataframes_have_exactly_the_documented_columns(tmp_path: Path, db: Path):
    flow = write(tmp_path, "f.yaml", """
        name: frames
        steps:
          - name: a
            run: "true"
          - name: b
            run: exit 2
            retry: {limit: 1, backoff: {base: 0}}
    """)
    run = chronum.run(flow, db=db)
    assert run.status == "failed"
    with pytest.raises(RunFailedError, match="frames failed"):
        run.raise_for_status()
    hist = chronum.history(db=db)
    assert list(hist.columns) == ["run_id", "flow", "status", "started_at", "finished_at",
                                  "duration_s", "n_steps", "n_failed", "parent_run_id",
                                  "n_continued"]
    assert str(hist["started_at"].dtype) .startswith("datetime64") and \
        hist["started_at"].dt.tz is not None
    assert hist["status"].dtype == "category"
    steps = chronum.steps(db=db)
    assert list(steps.columns) == ["run_id", "step", "status", "attempts", "exit_code",
                                   "started_at", "finished_at", "duration_s", "reason", "cache_key",
                                   "item"]
    assert steps["step"].tolist() == ["a", "b"]
    assert steps["attempts"].tolist() == [1, 2]
    attempts = chronum.attempts(run.run_id[:5], db=db)
    assert list(attempts.columns) == ["run_id", "step", "attempt", "status", "exit_code",
                                      "started_at", "finished_at", "duration_s", "delay_s",
                                      "reason"]
    assert attempts["delay_s"].tolist() == [0.0, 0.0, 0.0]
    events = chronum.events(db=db)
    assert list(events.columns) == ["seq", "at", "kind", "step", "attempt", "data", "status",
                                    "exit_code", "reason", "delay_s", "duration_s",
                                    "executor", "from_run", "n_failed"]
    assert events["kind"].iloc[0] == "run.started" and events["kind"].iloc[-1] == "run.finished"
    assert run.steps.equals(steps)


def test_subscribers_see_live_events(tmp_path: Path, db: Path):
    flow = write(tmp_path, "f.yaml", """
        name: live
        steps:
          - name: a
            run: echo hello
    """)
    seen: list[Any] = []
    chronum.run(flow, db=db, subscribers=[seen.append])
    # step.spawned comes once the process is started: before or after its first line
    kinds = [e.kind for e in seen]
    assert kinds.index("step.started") < kinds.index("step.spawned") < kinds.index(
        "step.succeeded")
    seen = [e for e in seen if e.kind != "step.spawned"]
    assert [e.kind for e in seen] == ["run.started", "step.started", "step.log",
                                      "step.succeeded", "run.finished"]
    assert seen[2].line == "hello"


def test_sync_run_inside_a_loop_blocks_on_a_loop_of_its_own(tmp_path: Path, db: Path):
    flow = write(tmp_path, "f.yaml", """
        name: loop
        steps:
          - {name: a, run: "true"}
    """)

    async def main() -> Any:
        blocked = chronum.run(flow, db=db)  # a notebook cell's case: no await needed
        assert blocked.status == "succeeded"
        return await chronum.arun(flow, db=db)

    assert asyncio.run(main()).status == "succeeded"


def test_resume_in_process_keeps_values(tmp_path: Path, db: Path):
    marker = tmp_path / "marker"
    write(tmp_path, "vals.py", f"""
        import os
        calls = []

        def make():
            calls.append("make")
            return 41

        def use(make):
            if not os.path.exists({str(marker)!r}):
                raise RuntimeError("not yet")
            return make + 1
    """)
    flow = write(tmp_path, "f.yaml", """
        name: keep
        steps:
          - {name: make, executor: python, call: "vals:make"}
          - {name: use, executor: python, call: "vals:use", needs: [make]}
    """)
    first = chronum.run(flow, db=db)
    assert first.status == "failed"
    assert "not yet" in first.errors["use"]
    marker.touch()
    second = first.resume()
    assert second.status == "succeeded"
    assert second.outputs["use"] == 42
    import vals  # type: ignore[import-not-found]

    assert vals.calls == ["make"]
    assert chronum.history(db=db)["parent_run_id"].iloc[0] == first.run_id
