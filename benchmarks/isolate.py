"""What ``isolate: process`` costs per call, against the same call in a worker thread.

    python benchmarks/isolate.py [--steps 40] [--repeat 5] [--json]

Two flows of ``--steps`` independent python steps (``maxParallel: 1``, so calls do not overlap
and the time is per call) calling the same function, one with ``isolate: process`` on every
step. Each run goes through ``chronum.run`` into a fresh database in this process; the runs
alternate (thread, process) so a busy machine slows both. The report is the median run of each,
the overhead per call (the difference over the number of steps) and the ratio of the per-call
times. The function is a notebook-style function defined in ``__main__`` (sent by value with
cloudpickle, as a notebook's is) that returns a small dict: the child pays interpreter start,
``import chronum`` and cloudpickle, and the round trip of the value.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import chronum
from chronum.spec import loads


def work(ctx: object = None) -> dict[str, int]:
    return {"answer": 42}


def flow_yaml(n: int, isolate: bool) -> str:
    lines = [f"name: iso-{'process' if isolate else 'thread'}", "maxParallel: 1", "steps:"]
    for i in range(n):
        lines += [f"  - name: s{i}", "    executor: python", "    call: work"]
        if isolate:
            lines.append("    isolate: process")
    return "\n".join(lines) + "\n"


def once(n: int, isolate: bool, folder: Path, k: int) -> float:
    flow = loads(flow_yaml(n, isolate), filename="isolate.yaml")
    started = time.perf_counter()
    run = chronum.run(flow, db=folder / f"{k}-{isolate}.db", namespace={"work": work})
    took = time.perf_counter() - started
    assert run.status == "succeeded", run.errors
    assert run.outputs[f"s{n - 1}"] == {"answer": 42}
    return took


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    n = args.steps
    threads, processes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        once(2, True, folder, -1)  # warm: imports, the supervisor, the page cache
        once(2, False, folder, -1)
        for k in range(args.repeat):
            threads.append(once(n, False, folder, k))
            processes.append(once(n, True, folder, k))
    thread, process = statistics.median(threads), statistics.median(processes)
    result = {
        "steps": n,
        "thread_run_s": round(thread, 4),
        "process_run_s": round(process, 4),
        "thread_per_call_ms": round(thread / n * 1000, 2),
        "process_per_call_ms": round(process / n * 1000, 2),
        "overhead_per_call_ms": round((process - thread) / n * 1000, 2),
        "ratio": round(process / thread, 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{n} calls, median of {args.repeat}: thread {thread:.3f} s "
              f"({result['thread_per_call_ms']} ms/call), isolate: process {process:.3f} s "
              f"({result['process_per_call_ms']} ms/call)")
        print(f"overhead {result['overhead_per_call_ms']} ms per call, "
              f"{result['ratio']}x a thread call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
