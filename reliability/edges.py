"""Bounded time and loud failures at the edges: the cycle check stays linear on a long chain,
and a database removed during a run is reported instead of a clean exit.
"""

from __future__ import annotations

import statistics
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


def _cycle_seconds(n_steps: int) -> float:
    """How long ``find_cycle`` takes on ``n_steps`` behind a cycle (and that it finds it)."""
    edges = _chain_behind_cycle(n_steps)
    started = time.perf_counter()
    cycle = dag.find_cycle(edges)
    took = time.perf_counter() - started
    assert cycle == ["x", "y", "x"], cycle
    return took


def check_cycle_linear(n_steps: int, limit_ratio: float | None = None,
                       repeat: int = 3) -> list[Figure]:
    """``find_cycle`` on ``n_steps`` behind a cycle, and on a tenth of them, interleaved.

    Linear time makes the ratio of the two about 10 (up to 20 here: the big graph's dicts no
    longer fit in the CPU's caches); the search from every stuck step this check was written
    against grows with the square, about 100. A ratio measured in the same run holds on a busy
    machine, where an absolute limit in seconds does not. ``limit_ratio`` is asserted only
    in the full run (tests never assert a time)."""
    small = max(n_steps // 10, 1)
    big_s, small_s = [], []
    for _ in range(repeat):
        big_s.append(_cycle_seconds(n_steps))
        small_s.append(_cycle_seconds(small))
    big, tenth = statistics.median(big_s), statistics.median(small_s)
    ratio = big / tenth if tenth > 0 else float("inf")
    if limit_ratio is not None:
        assert ratio <= limit_ratio, (f"{big:.2f} s for {n_steps:,} steps, {tenth:.3f} s for "
                                      f"{small:,}: {ratio:.1f}x (limit {limit_ratio:g}x)")
    return [Figure("bounded time", f"cycle check of a {n_steps:,}-step chain behind a cycle, "
                   f"over the same for {small:,} steps (10x means linear)",
                   f"{ratio:.1f}x ({big:.2f} s)")]


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
