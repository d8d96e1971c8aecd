"""Fan-out benchmarks (issue 14): what an instance costs beside a plain step, and the notebook
view of a wide fan-out beside a small flow's.

1. **Per instance vs per step (W1).** W1 is ``n`` independent in-process no-ops and one step
   needing them all (``workloads.fan_in``). Its twin here is one step with ``foreach:`` over
   ``n`` items calling the same no-op, and the same joining step. Both run as whole
   ``chronum run`` processes, interleaved (plain, fan-out, plain, ...) after one warm-up run of
   each; the medians of the wall times, divided by ``n``, are the cost per step and per
   instance. Budget: per instance at most 1.1x per step.
2. **Notebook view.** A ``LiveView`` (no kernel: its display messages are counted where they
   are published, as in ``tests/notebook/test_view.py``) over a real run of a fan-out of ``n``
   no-op instances, beside the same view over a 10-step flow, in one process (the 10-step run
   first, so it pays the process's first imports). Measured: first paint, from the view's
   creation until its graph is sent (as ``notebook_bench.py`` measures it); from the fan-out
   step's expansion until a flush has sent its ``n`` instances (counter, bar, table); from the
   view's creation until the first flush after the run started (session start included); the
   slowest flush; output updates per event. Budget: first paint at most 1 s, the instances on
   screen within 1 s of their expansion, updates batched.

    python benchmarks/fanout.py [--n 10000] [--repeat 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import workloads as wl

CHRONUM = str(Path(sys.executable).parent / "chronum")


def fanout_yaml(n: int) -> str:
    """W1's twin: one fan-out step over ``n`` items of the no-op, then the join."""
    items = ", ".join(str(i) for i in range(n))
    return (f"name: w1-fanout\nmaxParallel: {wl.PARALLEL}\nsteps:\n"
            f"  - name: each\n    executor: python\n    call: {wl.NOOP_MODULE}:noop\n"
            f"    foreach: [{items}]\n"
            "  - name: join\n    executor: python\n"
            f"    call: {wl.NOOP_MODULE}:noop\n    needs: [each]\n")


def _timed(flow: Path, db: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([CHRONUM, "run", str(flow), "--db", str(db), "--format", "json"],
                          cwd=flow.parent, env=env, capture_output=True, text=True,
                          check=False)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{flow.name} failed: {proc.stderr or proc.stdout}")
    return took


def per_instance(n: int, repeat: int, scratch: Path) -> dict[str, Any]:
    import os

    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    env["CHRONUM_CACHE_DIR"] = str(scratch / "cache")
    wl.write_noop_module(scratch)
    plain = wl.write_flow(scratch, "plain", wl.fan_in(n))
    fan = scratch / "fanout.yaml"
    fan.write_text(fanout_yaml(n), encoding="utf-8")
    times: dict[str, list[float]] = {"plain": [], "fanout": []}
    for i in range(repeat + 1):  # the first round warms the caches, not counted
        for name, flow in (("plain", plain), ("fanout", fan)):
            took = _timed(flow, scratch / f"{name}-{i}.db", env)
            if i:
                times[name].append(took)
    step = statistics.median(times["plain"]) / n
    instance = statistics.median(times["fanout"]) / n
    return {"n": n, "repeat": repeat, "per_step_ms": step * 1e3,
            "per_instance_ms": instance * 1e3, "ratio": instance / step,
            "plain_s": times["plain"], "fanout_s": times["fanout"], "budget": 1.1}


def _view_run(flow_text: str, scratch: Path, run_id: str) -> dict[str, Any]:
    from chronum import api
    from chronum.eventbus import RunStarted, StepExpanded
    from chronum.notebook.view import LiveView
    from chronum.spec import loads

    flow = loads(flow_text, filename=f"{run_id}.yaml")
    sent: list[bool] = []  # one per display message: whether it updates an output

    def counting(display_id: str, bundle: dict[str, Any], update: bool) -> None:
        sent.append(update)

    flushes: list[float] = []
    painted: list[float] = []
    expanded: list[float] = []
    shown: list[float] = []
    events = 0

    async def main() -> tuple[float, float]:
        nonlocal events
        created = time.perf_counter()
        view = LiveView(flow, run_id, publish=counting)
        await view.layout()
        started = False
        flush = view.flush

        def timed_flush() -> None:
            start = time.perf_counter()
            flush()
            flushes.append(time.perf_counter() - start)
            if started and not painted:
                painted.append(time.perf_counter() - created)
            if expanded and not shown:
                shown.append(time.perf_counter() - expanded[0])

        def count(event: object) -> None:
            nonlocal events, started
            events += 1
            if isinstance(event, RunStarted):
                started = True
            elif isinstance(event, StepExpanded) and not expanded:
                expanded.append(time.perf_counter())

        view.flush = timed_flush  # type: ignore[method-assign]
        run = await api.arun(flow, db=scratch / f"{run_id}.db", namespace={"noop": _noop},
                             subscribers=[count, view], run_id=run_id)
        view.flush()  # what the run left unsent (a cell sends its final picture then)
        view.finish(run.status)
        graph.append((view.first_graph_at or created) - created)
        return created, time.perf_counter()

    graph: list[float] = []
    asyncio.run(main())
    updates = sum(sent)
    return {"first_paint_s": graph[0], "instances_shown_s": shown[0] if shown else None,
            "first_run_flush_s": painted[0] if painted else None,
            "slowest_flush_s": max(flushes) if flushes else None,
            "flushes": len(flushes), "events": events, "view_updates": updates}


def _noop(item: Any = None) -> None:
    return None


def notebook_view(n: int, scratch: Path) -> dict[str, Any]:
    wide = (f"name: wide\nmaxParallel: 2\nparams: {{n: '{json.dumps(list(range(n)))}'}}\n"
            "steps:\n  - {name: each, executor: python, call: noop, foreach: {param: n}}\n"
            "  - {name: join, executor: python, call: noop, needs: [each]}\n")
    small = "name: small\nmaxParallel: 2\nsteps:\n" + "".join(
        f"  - {{name: s{i}, executor: python, call: noop}}\n" for i in range(10))
    ten = _view_run(small, scratch, "small")
    fan = _view_run(wide, scratch, "wide")
    return {"n": n, "ten_steps": ten, "fanout": fan,
            "first_paint_ratio": (fan["first_paint_s"] or 0) / (ten["first_paint_s"] or 1),
            "budget_s": 1.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="chronum-fanout-bench-") as tmp:
        scratch = Path(tmp)
        cost = per_instance(args.n, args.repeat, scratch)
        view = notebook_view(args.n, scratch)
    print(f"W1 per step      {cost['per_step_ms']:.3f} ms   ({args.n:,} no-ops + 1 join)")
    print(f"   per instance  {cost['per_instance_ms']:.3f} ms   (foreach over {args.n:,} items "
          f"+ 1 join)")
    verdict = "ok" if cost["ratio"] <= cost["budget"] else "OVER"
    print(f"   ratio         {cost['ratio']:.2f}x   budget <= {cost['budget']}x  {verdict}")
    fan, ten = view["fanout"], view["ten_steps"]
    paint_ok = "ok" if fan["first_paint_s"] <= 1.0 else "OVER"
    shown_ok = "ok" if fan["instances_shown_s"] is not None \
        and fan["instances_shown_s"] <= 1.0 else "OVER"
    print(f"view first paint {fan['first_paint_s']:.3f} s for {args.n:,} instances, "
          f"{ten['first_paint_s']:.3f} s for 10 steps ({view['first_paint_ratio']:.2f}x); "
          f"budget <= 1 s  {paint_ok}")
    print(f"     instances on screen {fan['instances_shown_s']:.3f} s after their expansion; "
          f"budget <= 1 s  {shown_ok}")
    print(f"     creation to the first flush of the run: {fan['first_run_flush_s']:.3f} s, "
          f"10 steps {ten['first_run_flush_s']:.3f} s")
    print(f"     slowest flush {fan['slowest_flush_s']:.3f} s; {fan['view_updates']} output "
          f"updates for {fan['events']:,} events in {fan['flushes']} flushes")
    if args.json is not None:
        args.json.write_text(json.dumps({"per_instance": cost, "view": view}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
