"""A real Chronum process for the store tests (run as a script, not collected by pytest).

    python store_worker.py DB hang RUN_ID      begin a run, record a step start, print
                                               "ready", then sleep until killed
    python store_worker.py DB write PREFIX N   record N whole runs of 50 steps each
"""

from __future__ import annotations

import sys
import time

import chronum.eventbus as ev
from chronum.model import Flow, Step
from chronum.store import Store

STEPS = 50
FLOW = Flow(name="worker", steps=tuple(Step(f"s{i:02d}", run="true") for i in range(STEPS)))


def hang(store: Store, run_id: str) -> None:
    store.begin_run(run_id, FLOW)
    store.record(ev.RunStarted(run_id=run_id, flow=FLOW.name, steps=FLOW.step_names))
    store.record(ev.StepStarted(run_id=run_id, step="s00", attempt=1))
    store.flush()
    print("ready", flush=True)
    while True:
        time.sleep(1)


def write(store: Store, prefix: str, runs: int) -> None:
    for r in range(runs):
        run_id = f"{prefix}-{r:03d}"
        store.begin_run(run_id, FLOW)
        store.record(ev.RunStarted(run_id=run_id, flow=FLOW.name, steps=FLOW.step_names))
        for i, name in enumerate(FLOW.step_names):
            store.record(ev.StepStarted(run_id=run_id, step=name, attempt=1))
            store.record(ev.LogLine(run_id=run_id, step=name, line=f"{run_id} {name}"))
            store.record(ev.StepSucceeded(run_id=run_id, step=name, attempt=1))
            if i % 5 == 4:
                store.flush()  # many small transactions, as the engine's ticks make them
        store.record(ev.RunFinished(run_id=run_id, status="succeeded"))
        store.flush()


def main(argv: list[str]) -> None:
    db, mode, *args = argv
    with Store(db) as store:
        if mode == "hang":
            hang(store, args[0])
        else:
            write(store, args[0], int(args[1]))
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
