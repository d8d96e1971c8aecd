"""Bounded time and loud failures at the edges: the cycle check stays linear on a long chain,
and a database removed during a run is reported instead of a clean exit.
"""

from __future__ import annotations

import time
from pathlib import Path

from chronum import dag

from ._common import Figure, Workspace, wait_for

__all__ = ["check_cycle_linear", "check_database_removed"]


def _chain_behind_cycle(n_steps: int) -> dict[str, list[str]]:
    """``n_steps`` written first, each needing the one before, the first needing a 2-step
    cycle written last: the shape that made a search from every stuck step quadratic."""
    edges: dict[str, list[str]] = {"s0": ["x"]}
    for i in range(1, n_steps):
        edges[f"s{i}"] = [f"s{i - 1}"]
    edges["x"] = ["y"]
    edges["y"] = ["x"]
    return edges


def check_cycle_linear(n_steps: int, limit_s: float | None = None) -> list[Figure]:
    """``find_cycle`` on ``n_steps`` behind a cycle; ``limit_s`` only in the full run (tests
    never assert a time)."""
    edges = _chain_behind_cycle(n_steps)
    started = time.perf_counter()
    cycle = dag.find_cycle(edges)
    took = time.perf_counter() - started
    assert cycle == ["x", "y", "x"], cycle
    if limit_s is not None:
        assert took <= limit_s, f"{took:.2f} s for {n_steps:,} steps (limit {limit_s:g} s)"
    return [Figure("bounded time", f"cycle check of a {n_steps:,}-step chain behind a cycle",
                   f"{took:.2f} s")]


_FLOW = """name: slow
steps:
  - name: first
    run: sleep 0.5
  - name: second
    needs: [first]
    run: sleep 1
"""

_LOST = "the database file was removed or replaced during the run; this run's record is lost"


def check_database_removed(work: Path) -> list[Figure]:
    """Delete the database file (and its WAL) while a run goes on: the run must say so."""
    ws = Workspace(work / "db-removed")
    ws.write("f.yaml", _FLOW)
    proc = ws.popen("run", "f.yaml")
    try:
        wait_for(ws.db.exists, timeout=30)
        time.sleep(0.3)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{ws.db}{suffix}").unlink(missing_ok=True)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, f"exit {proc.returncode} after the database was removed"
    assert "Traceback" not in err, err[-2000:]
    assert _LOST in err, err[-500:]
    return [Figure("loud failures", "database removed mid-run: exit code, message",
                   f"{proc.returncode}, reported")]
