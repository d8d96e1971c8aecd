"""`chronum export`: every table, every format, read back with pandas."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pandas as pd
import pytest

from .conftest import Served


@pytest.fixture
def recorded(served: Served) -> Served:
    one = served.write("one.yaml", """
        name: one
        steps:
          - name: a
            run: echo a
          - name: b
            run: 'exit 2'
            needs: [a]
            retry: {limit: 1, backoff: {base: 0.01}}
    """)
    two = served.write("two.yaml", "name: two\nsteps:\n  - name: x\n    run: 'true'\n")
    served.run(one)
    served.run(two)
    return served


def _export(served: Served, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chronum", "export", *args], cwd=served.folder,
                          env=served.env, capture_output=True, text=True, timeout=60)


def test_csv_and_jsonl_go_to_stdout_with_iso_utc_times(recorded: Served):
    runs = pd.read_csv(io.StringIO(_export(recorded, "runs").stdout))
    assert list(runs.columns) == ["run_id", "flow", "status", "started_at", "finished_at",
                                  "duration_s", "n_steps", "n_failed", "parent_run_id",
                                  "n_continued"]
    assert list(runs["flow"]) == ["one", "two"]  # oldest first
    assert list(runs["n_failed"]) == [1, 0]
    started = pd.to_datetime(runs["started_at"], utc=True, format="ISO8601")
    assert started.is_monotonic_increasing
    assert runs["started_at"].str.endswith("+00:00").all()

    attempts = pd.read_json(io.StringIO(_export(recorded, "attempts", "--format", "jsonl",
                                                "--flow", "one").stdout), lines=True)
    assert list(zip(attempts["step"], attempts["attempt"], attempts["status"],
                    strict=True)) == [("a", 1, "succeeded"), ("b", 1, "failed"),
                                      ("b", 2, "failed")]
    events = [json.loads(line) for line in _export(recorded, "events", "--format",
                                                   "jsonl").stdout.splitlines()]
    assert events[0]["kind"] == "run.started" and isinstance(events[0]["data"], dict)
    assert events[0]["at"].endswith("+00:00")


def test_parquet_round_trips_through_pandas(recorded: Served):
    out = recorded.folder / "steps.parquet"
    proc = _export(recorded, "steps", "--format", "parquet", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_parquet(out)
    assert list(frame["step"]) == ["a", "b", "x"]
    assert list(frame["status"]) == ["succeeded", "failed", "succeeded"]
    assert str(frame["started_at"].dtype) == "datetime64[us, UTC]"
    assert frame["exit_code"].tolist()[1] == 2
    # the same values as the CSV export, to the microsecond
    csv = pd.read_csv(io.StringIO(_export(recorded, "steps").stdout))
    again = pd.to_datetime(csv["finished_at"], utc=True, format="ISO8601")
    assert (again.astype("datetime64[us, UTC]") == frame["finished_at"]).all()
    empty = recorded.folder / "none.parquet"
    assert _export(recorded, "runs", "--format", "parquet", "--flow", "zzz", "-o",
                   str(empty)).returncode == 0
    assert len(pd.read_parquet(empty)) == 0


def test_since_and_mistakes(recorded: Served):
    assert _export(recorded, "runs", "--since", "2999-01-01").stdout.strip().count("\n") == 0
    bad = _export(recorded, "runs", "--since", "yesterday")
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr and "Traceback" not in bad.stderr
    nofile = _export(recorded, "runs", "--format", "parquet")
    assert nofile.returncode == 2 and "-o" in nofile.stderr
