"""A step that prints a lot: the log file is complete and memory stays bounded."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

import chronum.eventbus as ev
from chronum.errors import StoreError
from chronum.model import Flow
from chronum.store import Store
from chronum.store.logs import relative_log_path

LINE = 1000  # characters per line, so 52,429 lines make 50 MB with their newlines
TOTAL = 50 * 1024 * 1024


def test_fifty_megabytes_of_output_keep_memory_bounded(store: Store, flow: Flow) -> None:
    store.begin_run("big", flow)
    store.record(ev.StepStarted(run_id="big", step="build", attempt=1))
    lines = TOTAL // (LINE + 1)
    body = "x" * (LINE - 8)
    tracemalloc.start()
    try:
        for i in range(lines):
            store.record(ev.LogLine(run_id="big", step="build", line=f"{i:07d} {body}"))
            if i % 2000 == 0:
                store.flush()  # as the engine's ticks do, while the step prints
        store.record(ev.StepSucceeded(run_id="big", step="build", attempt=1))
        store.flush()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while writing 50 MB of log"

    path = store.log_path("big", "build")
    assert path is not None and path.stat().st_size == lines * (LINE + 1)
    with path.open() as f:
        first = f.readline()
        count = 1 + sum(1 for _ in f)
    assert first.startswith("0000000 ") and count == lines
    tail = store.step_rows("big")[0]["log_tail"]
    assert len(tail) <= 16 * 1024
    assert tail.endswith(f"{lines - 1:07d} {body}")


def test_import_chronum_store_does_not_import_pandas() -> None:
    code = ("import sys, chronum.store, chronum.store.frames; "
            "print(sorted(m for m in ('pandas', 'numpy', 'IPython') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"


def _full_log(db_path: Path, run_id: str, step: str) -> None:
    """The step's log file is /dev/full: every write to it fails with ENOSPC, as on a full
    disk, while the database beside it still has room."""
    link = db_path.parent / relative_log_path(run_id, step)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to("/dev/full")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("flush_first", [True, False], ids=["flush-then-close", "close"])
def test_a_log_that_cannot_be_written_is_a_store_error_and_the_store_still_closes(
        db_path: Path, flow: Flow, flush_first: bool) -> None:
    store = Store(db_path)
    store.begin_run("full", flow)
    _full_log(db_path, "full", "build")
    store.record(ev.StepStarted(run_id="full", step="build", attempt=1))
    store.record(ev.LogLine(run_id="full", step="build", line="a line the disk cannot take"))
    if flush_first:  # the engine's tick finds the disk full, then the run closes the store
        with pytest.raises(StoreError, match="No space left"):
            store.flush()
        store.close()  # the failure was reported once; the log's buffer was let go
    else:  # closing flushes the log's buffer: a StoreError, never a bare OSError
        with pytest.raises(StoreError, match=r"cannot write step logs .*: the disk is full; "):
            store.close()
    store.close()  # closed for good: nothing left to fail
    with Store(db_path) as again:  # the database itself is consistent and readable
        assert again.run("full")["status"] == "running"
