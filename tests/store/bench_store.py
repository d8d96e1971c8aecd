"""Timing of the store's hot paths (a script, not a test: ``python tests/store/bench_store.py``).

Prints the cost of flushing a 1,000-step run's events and of ``steps()`` / ``steps_frame`` over
one run of 100,000 steps (budget for the latter: 1 s, issue #2).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import chronum.eventbus as ev
from chronum.model import Flow, Step
from chronum.store import Store, steps_frame


def _timed(label: str, fn: object) -> object:
    start = time.perf_counter()
    result = fn()  # type: ignore[operator]
    print(f"{label:<48} {1000 * (time.perf_counter() - start):8.1f} ms")
    return result


def _run(store: Store, run_id: str, n: int, flush_every: int, output: bool = True) -> None:
    flow = Flow(name="bench", steps=tuple(Step(f"s{i}") for i in range(n)))
    _timed(f"begin_run ({n:,} steps)", lambda: store.begin_run(run_id, flow))
    store.record(ev.RunStarted(run_id=run_id, flow="bench", steps=flow.step_names))
    flush_ms = []
    for i, name in enumerate(flow.step_names):
        store.record(ev.StepStarted(run_id=run_id, step=name, attempt=1))
        if output:  # each step that prints gets its own log file: one file creation
            store.record(ev.LogLine(run_id=run_id, step=name, attempt=1, line="ok"))
        store.record(ev.StepSucceeded(run_id=run_id, step=name, attempt=1))
        if i % flush_every == flush_every - 1:
            start = time.perf_counter()
            store.flush()
            flush_ms.append(1000 * (time.perf_counter() - start))
    store.record(ev.RunFinished(run_id=run_id, status="succeeded"))
    store.flush()
    if flush_ms:
        flush_ms.sort()
        print(f"flush of {flush_every} steps (median of {len(flush_ms)})"
              f"{'':<14} {flush_ms[len(flush_ms) // 2]:8.1f} ms")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "bench.db") as store:
        for run_id, output in (("quiet", False), ("small", True)):
            start = time.perf_counter()
            _run(store, run_id, 1_000, 50, output)
            label = "1,000 steps, " + ("one log line each" if output else "no output")
            print(f"{label + ', whole run':<48} {1000 * (time.perf_counter() - start):8.1f} ms")
        _run(store, "big", 100_000, 1_000)
        rows = _timed("steps() over 100,000 steps", lambda: store.steps("big"))
        assert len(rows) == 100_000  # type: ignore[arg-type]
        _timed("import pandas", lambda: __import__("pandas"))
        frame = _timed("steps_frame over 100,000 steps", lambda: steps_frame(store, "big"))
        assert len(frame) == 100_000  # type: ignore[arg-type]
        _timed("steps() of the small run beside them", lambda: store.steps("small"))
        _timed("history()", store.history)


if __name__ == "__main__":
    main()
