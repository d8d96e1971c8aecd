"""The floor under a workload: only the work that issue #2's design cannot avoid, in one process.

    python benchmarks/floor.py W0
    python benchmarks/floor.py W1 1000        # 1,000 independent no-ops, then a join
    python benchmarks/floor.py W2 300         # a 300-step chain
    python benchmarks/floor.py W4 10 50       # 10 layers of 50, each step needing the layer before
    python benchmarks/floor.py W1 1000 --shape    # print "steps edges" and exit

The design requires an asyncio engine, sync ``call:`` functions run in a worker thread, and
every state recorded in SQLite. So this script imports ``asyncio`` and ``sqlite3``, then runs
the workload's DAG (same shape, same number of steps as the flow ``run.py`` writes) with a
no-op function per step, each handed to one of 2 worker threads, at most 2 at a time (the
flows' ``maxParallel: 2``), every step starting only after the steps it needs have finished,
ready steps in file order. The hand-off is the cheapest one known here (the one chronum's
python executor uses): a ``queue.SimpleQueue`` put to a waiting thread and one
``loop.call_soon_threadsafe`` back, 15-30 % cheaper than ``loop.run_in_executor``. Nothing
else: no YAML, no recording, no events, no per-step task; the scheduler is a done-callback on
each future. Any runtime meeting the design pays at least this, so ``run.py`` times it as a
whole process beside ``chronum run`` and reports the ratio.

Standard library only, and only what the floor needs: importing more would raise the floor.
"""

import asyncio
import functools
import queue
import sqlite3  # noqa: F401  (imported, not used: the store's import cost is part of the floor)
import sys
import threading
from collections import deque

PARALLEL = 2


def noop() -> None:
    return None


def shape(workload: str, sizes: list[int]) -> list[list[int]]:
    """Each step's needs (indices of earlier steps), in the order ``workloads.py`` writes them."""
    if workload == "W0":
        return [[]]
    if workload == "W1":
        (n,) = sizes
        return [[] for _ in range(n)] + [list(range(n))]
    if workload == "W2":
        (n,) = sizes
        return [[]] + [[i - 1] for i in range(1, n)]
    if workload == "W4":
        depth, width = sizes
        return [[] if layer == 0 else list(range((layer - 1) * width, layer * width))
                for layer in range(depth) for _ in range(width)]
    raise SystemExit(f"unknown workload {workload!r} (W0, W1, W2 or W4)")


async def run(needs: list[list[int]]) -> int:
    loop = asyncio.get_running_loop()
    n = len(needs)
    waiting = [len(d) for d in needs]
    dependents: list[list[int]] = [[] for _ in range(n)]
    for step, deps in enumerate(needs):
        for dep in deps:
            dependents[dep].append(step)
    ready = deque(step for step in range(n) if not waiting[step])
    finished: asyncio.Future[None] = loop.create_future()
    state = {"running": 0, "done": 0}
    jobs: queue.SimpleQueue[asyncio.Future[None] | None] = queue.SimpleQueue()

    def worker() -> None:
        while (future := jobs.get()) is not None:
            noop()
            loop.call_soon_threadsafe(future.set_result, None)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(PARALLEL)]
    for thread in threads:
        thread.start()

    def launch() -> None:
        while state["running"] < PARALLEL and ready:
            step = ready.popleft()
            state["running"] += 1
            future: asyncio.Future[None] = loop.create_future()
            future.add_done_callback(functools.partial(complete, step))
            jobs.put(future)

    def complete(step: int, future: asyncio.Future[None]) -> None:
        error = future.exception()
        if error is not None:
            finished.set_exception(error)
            return
        state["running"] -= 1
        state["done"] += 1
        for later in dependents[step]:
            waiting[later] -= 1
            if not waiting[later]:
                ready.append(later)
        if state["done"] == n:
            finished.set_result(None)
        else:
            launch()

    launch()
    await finished
    for _ in threads:
        jobs.put(None)
    return state["done"]


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    if not args:
        raise SystemExit(__doc__)
    needs = shape(args[0], [int(a) for a in args[1:]])
    if "--shape" in argv:
        print(len(needs), sum(len(d) for d in needs))
        return 0
    done = asyncio.run(run(needs))
    return 0 if done == len(needs) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
