"""``events()`` and ``chronum export events``: every column is one a run fills, and the export
has the frame's columns. Real runs of real shell steps into a real SQLite file."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import chronum
from chronum.api import show_logs
from chronum.store.queries import EVENT_DATA_COLUMNS


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Two runs of a cached flow that prints, retries and fails: the second reuses `a`."""
    (tmp_path / "f.yaml").write_text(textwrap.dedent("""
        name: noisy
        cache: true
        steps:
          - name: a
            run: echo out; echo err >&2
          - name: b
            needs: a
            cache: false
            retry: {limit: 1, backoff: {base: 0.01}}
            run: echo trying; exit 3
    """))
    path = tmp_path / "runs.db"
    for _ in range(2):
        chronum.run(tmp_path / "f.yaml", db=path)
    return path


def test_log_lines_are_not_events_and_every_column_is_filled(db: Path) -> None:
    frame = chronum.events(db=db)
    assert "stream" not in frame.columns and "line" not in frame.columns
    assert "step.log" not in set(frame["kind"])
    # each column of a data field holds a value in some event of a run like this one
    empty = [c for c in EVENT_DATA_COLUMNS if frame[c].isna().all()]
    assert empty == []
    assert frame.loc[frame["kind"] == "step.cached", "from_run"].notna().all()
    # what the steps printed is in their logs
    out = io.StringIO()
    show_logs("last", "b", db=db, out=out)
    assert "trying" in out.getvalue()


def _export(db: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "chronum", "export", "events", *args,
                           "--db", str(db)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_export_has_the_frame_s_columns_in_every_format(db: Path, tmp_path: Path) -> None:
    frame = chronum.events(flow="noisy", db=db)  # every run: run_id and flow first
    columns = [c for c in frame.columns if c != "flow"]
    csv = pd.read_csv(io.StringIO(_export(db)))
    assert list(csv.columns) == columns
    lines = [json.loads(line) for line in _export(db, "--format", "jsonl").splitlines()]
    assert list(lines[0]) == columns
    assert [row["exit_code"] for row in lines] == [
        None if pd.isna(v) else int(v) for v in frame["exit_code"]]
    assert [row["reason"] for row in lines] == [
        None if pd.isna(v) else v for v in frame["reason"]]
    parquet = tmp_path / "events.parquet"
    _export(db, "--format", "parquet", "-o", str(parquet))
    read = pd.read_parquet(parquet)
    assert list(read.columns) == columns
    assert read["n_failed"].dropna().tolist() == frame["n_failed"].dropna().tolist()
