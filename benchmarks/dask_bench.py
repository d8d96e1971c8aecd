"""Dask executor overhead: 1,000 no-op python steps vs a raw ``client.map`` (budget <= 2x).

    python benchmarks/dask_bench.py [--steps 1000] [--repeat 3]

Both run in this process against the same ``LocalCluster(processes=False)``, alternating, and
the medians are compared. The flow side is the engine plus the dask executor (no store): 1,000
independent ``call:`` steps with ``maxParallel`` = steps, each one task, its value a future
fetched when the run ends. The baseline maps the same function and gathers the results.
Needs ``pip install 'chronum[dask]'``. A report, not a test: exit code 0 even over budget.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

from chronum.engine import run_flow
from chronum.eventbus import EventBus
from chronum.executors import ExecutorRegistry
from chronum.executors.dask_executor import DaskExecutor
from chronum.model import Flow, Step

BUDGET = 2.0


async def _flow_once(flow: Flow, address: str, n: int) -> float:
    registry = ExecutorRegistry(entry_points=False)
    registry.register("dask", lambda: DaskExecutor(address))
    started = time.perf_counter()
    outcome = await run_flow(flow, run_id=f"bench{time.monotonic_ns()}", bus=EventBus(),
                             executors=registry)
    elapsed = time.perf_counter() - started
    ok = sum(1 for s in outcome.states.values() if s == "succeeded")
    if outcome.status != "succeeded" or ok != n:
        raise SystemExit(f"the flow did not succeed: {outcome.status}, {ok}/{n} steps")
    return elapsed


async def _map_once(client: object, func: object, n: int) -> float:
    started = time.perf_counter()
    futures = client.map(func, range(n), pure=False)  # type: ignore[attr-defined]
    await client.gather(futures)  # type: ignore[attr-defined]
    return time.perf_counter() - started


async def main(n: int, repeat: int) -> int:
    from distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory(prefix="chronum-dask-bench-") as tmp:
        folder = Path(tmp)
        (folder / "bench_noop.py").write_text("def noop(*args):\n    return None\n")
        sys.path.insert(0, tmp)
        func = importlib.import_module("bench_noop").noop
        steps = tuple(Step(name=f"s{i:04d}", executor="dask", call="bench_noop:noop")
                      for i in range(n))
        flow = Flow(name="dask-bench", steps=steps, max_parallel=n, base_dir=folder)
        cluster = await LocalCluster(processes=False, dashboard_address=None, asynchronous=True,
                                     scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        async with cluster, Client(cluster, asynchronous=True) as client:
            await _map_once(client, func, 50)  # warm up both paths
            await _flow_once(flow, cluster.scheduler_address, n)
            flows, maps = [], []
            for _ in range(repeat):
                maps.append(await _map_once(client, func, n))
                flows.append(await _flow_once(flow, cluster.scheduler_address, n))
    f, m = statistics.median(flows), statistics.median(maps)
    ratio = f / m
    verdict = "ok" if ratio <= BUDGET else "OVER BUDGET"
    print(f"dask: {n} no-op steps through chronum {f:.3f}s, raw client.map {m:.3f}s, "
          f"ratio {ratio:.2f}x (budget {BUDGET:g}x) {verdict}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.steps, args.repeat)))
