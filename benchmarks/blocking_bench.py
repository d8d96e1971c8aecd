"""The blocking API in a cell: a private loop in a worker thread against ``nest_asyncio2``.

    python benchmarks/blocking_bench.py [--repeat 5] [--steps 1000]

One real kernel (jupyter_client), every cell sent at once as Run All does. W1 (``--steps``
in-process no-ops and a join, ``workloads.fan_in``'s shape) runs in the kernel, no view, timed
in the kernel with ``perf_counter``, medians of ``--repeat``:

1. ``await api.execute(...)`` on the kernel's loop: the floor;
2. ``api.blocking(...)``: a private loop in a worker thread, what ``chronum.run`` does in a
   cell;
3. ``nest_asyncio2.apply()`` then ``loop.run_until_complete(...)`` on the kernel's own loop.

Three cells queued behind the last one print a line each: the report says whether each arrived,
in order (the queued cells stay intact). The figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time

import jupyter_client

SETUP = """
import asyncio, json, statistics, time
from chronum import api
from chronum.model import Flow, Step
def noop():
    return None
N = {steps}
flow = Flow(name="w1", max_parallel=2, steps=tuple(
    [Step(name=f"s{{i}}", executor="python", call="noop") for i in range(N)]
    + [Step(name="join", executor="python", call="noop",
            needs=tuple(f"s{{i}}" for i in range(N)))]))
opts = api.options_of({{"namespace": {{"noop": noop}}, "db": "bench.db"}})
def timed(fn, repeat={repeat}):
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); r = fn(); times.append(time.perf_counter() - t)
        assert r.status == "succeeded", r.status
    return statistics.median(times)
await api.execute(flow, opts)  # warm: imports, the supervisor, the page cache
"""

FLOOR = """
times = []
for _ in range({repeat}):
    t = time.perf_counter()
    r = await api.execute(flow, opts)
    times.append(time.perf_counter() - t)
print(json.dumps({{"floor": statistics.median(times)}}))
"""

THREAD = """
thread = timed(lambda: api.blocking(lambda: api.execute(flow, opts)))
print(json.dumps({"thread": thread}))
"""

NEST = """
import nest_asyncio2
nest_asyncio2.apply()
loop = asyncio.get_event_loop()
nested = timed(lambda: loop.run_until_complete(api.execute(flow, opts)))
print(json.dumps({"nest_asyncio2": nested}))
"""


async def run_all(cells: list[str], cwd: str) -> list[str]:
    km = jupyter_client.AsyncKernelManager(kernel_name="python3")
    await km.start_kernel(cwd=cwd)
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        ids = [kc.execute(code) for code in cells]
        texts = {i: "" for i in ids}
        replies: dict[str, str] = {}
        deadline = time.monotonic() + 600
        while any(i not in replies for i in ids) and time.monotonic() < deadline:
            try:
                msg = await kc.get_iopub_msg(timeout=0.2)
                parent = msg["parent_header"].get("msg_id")
                if msg["msg_type"] == "stream" and parent in texts:
                    texts[parent] += msg["content"]["text"]
                elif msg["msg_type"] == "error" and parent in texts:
                    texts[parent] += f"ERROR {msg['content']['ename']}\n"
            except Exception:
                pass
            while True:
                try:
                    reply = await kc.get_shell_msg(timeout=0.01)
                except Exception:
                    break
                replies[reply["parent_header"].get("msg_id")] = reply["content"]["status"]
        await asyncio.sleep(0.5)
        while True:
            try:
                msg = await kc.get_iopub_msg(timeout=0.3)
            except Exception:
                break
            parent = msg["parent_header"].get("msg_id")
            if msg["msg_type"] == "stream" and parent in texts:
                texts[parent] += msg["content"]["text"]
        return [f"{replies.get(i, 'no reply')}: {texts[i]}" for i in ids]
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    cells = [SETUP.format(steps=args.steps, repeat=args.repeat),
             FLOOR.format(repeat=args.repeat), THREAD, NEST,
             "print('queued 1')", "print('queued 2')", "print('queued 3')"]
    with tempfile.TemporaryDirectory() as tmp:
        out = asyncio.run(run_all(cells, tmp))
    figures: dict[str, float] = {}
    for line in out[1:4]:
        _status, _, text = line.partition(": ")
        for piece in text.splitlines():
            if piece.startswith("{"):
                figures.update(json.loads(piece))
    floor = figures.get("floor")
    for name, value in figures.items():
        ratio = f" ({value / floor:.2f}x the floor)" if floor else ""
        print(f"{name}: {value:.3f} s{ratio}")
    print("queued cells:", [line.strip() for line in out[4:]])
    print(f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
