"""The ``chronum.steps()`` benchmark's two halves, each run in its own process.

    python benchmarks/recorded.py build DB N      # record one run of N succeeded steps
    python benchmarks/recorded.py time DB RUN_ID  # time chronum.steps(RUN_ID, db=DB), as JSON

``build`` feeds events through ``chronum.store.Store`` exactly as the engine's bus does, so the
rows are the ones a real run writes, without spending minutes running 100,000 steps. ``time``
runs in a fresh interpreter so the first call pays what a user's first call pays (opening the
store, the lazy pandas import); a second call in the same process is reported beside it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

RUN_ID = "bench0recorded"


def build(db: Path, n: int) -> None:
    import chronum.eventbus as ev
    from chronum.model import Flow, Step
    from chronum.store import Store

    flow = Flow(name="recorded", steps=tuple(Step(f"s{i}") for i in range(n)), max_parallel=2)
    with Store(db) as store:
        store.begin_run(RUN_ID, flow)
        store.record(ev.RunStarted(run_id=RUN_ID, flow=flow.name, steps=flow.step_names))
        for i, name in enumerate(flow.step_names, start=1):
            store.record(ev.StepStarted(run_id=RUN_ID, step=name, attempt=1,
                                        executor="python"))
            store.record(ev.StepSucceeded(run_id=RUN_ID, step=name, attempt=1,
                                          duration_s=0.001))
            if i % 2_000 == 0:
                store.flush()
        store.record(ev.RunFinished(run_id=RUN_ID, status="succeeded"))
    print(json.dumps({"run_id": RUN_ID, "steps": n}))


def time_steps(db: Path, run_id: str) -> None:
    import chronum

    start, cpu = time.perf_counter(), time.process_time()
    frame = chronum.steps(run_id, db=db)
    cold, cold_cpu = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    again = chronum.steps(run_id, db=db)
    warm, warm_cpu = time.perf_counter() - start, time.process_time() - cpu
    ok = len(frame) == len(again) and bool((frame["status"] == "succeeded").all())
    # CPU seconds beside wall seconds: on a machine shared with other work only the CPU
    # seconds compare two trees.
    print(json.dumps({"seconds": cold, "warm_seconds": warm, "cpu_seconds": cold_cpu,
                      "warm_cpu_seconds": warm_cpu, "rows": len(frame), "ok": ok}))


if __name__ == "__main__":
    command, db_arg, arg = sys.argv[1:4]
    if command == "build":
        build(Path(db_arg), int(arg))
    elif command == "time":
        time_steps(Path(db_arg), arg)
    else:
        raise SystemExit(f"unknown command {command!r}: expected build or time")
