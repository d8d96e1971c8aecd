"""Notebook benchmarks, in a real kernel driven by nbclient.

1. A 1,000-step in-process flow through ``%%chronum`` (live view, graph, final picture) against
   the same flow with no display (``r = await chronum.arun(...)``) in the same kernel; each cell
   timed from its ``execute_input`` to its ``execute_reply`` as the kernel stamps them; medians
   of ``--repeat`` runs. Budget: ratio <= 1.2. Two ratios: re-running the same cell (its graph
   was laid out before in this kernel, so ``dot`` does not run again), and a new flow each time
   (another name, so ``dot`` lays out 1,000 nodes while the run goes on). The kernel's CPU
   seconds for the re-run cell and the no-display cell are reported too.
2. Time until a 200-step flow's graph is first sent, measured in the kernel from the start of
   the cell (``LiveView.first_graph_at - created_at``); a new flow each time, so it includes
   ``dot``; its steps sleep 20 ms, so the run lasts long enough for the live view to appear
   (``SHOW_AFTER``, 0.25 s). Budget: <= 1 s.

The 1,000 no-op steps take about as long as ``SHOW_AFTER``: some runs end before the live
view is due and show only the final picture, the others show the view as well.

    python benchmarks/notebook_bench.py [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any


def flow_yaml(n: int, name: str, call: str = "work") -> str:
    """``n`` python steps calling a notebook function, in chains of ten."""
    lines = [f"name: {name}", "maxParallel: 8", "steps:"]
    for i in range(n):
        lines += [f"  - name: s{i}", "    executor: python", f"    call: {call}"]
        if i % 10:
            lines.append(f"    needs: [s{i - 1}]")
    return "\n".join(lines) + "\n"


SETUP = """
import chronum, time
from chronum.spec import loads
def work():
    return 1
def nap():
    time.sleep(0.02)
"""


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _cell_seconds(cell: Any) -> float:
    timing = cell.metadata["execution"]
    return _stamp(timing["shell.execute_reply"]) - _stamp(timing["iopub.execute_input"])


async def _measure(repeat: int, workdir: Path) -> dict[str, Any]:
    import nbformat
    from nbclient import NotebookClient

    big = flow_yaml(1000, "bench1000")
    view_cell = "%%chronum --max-parallel 8\n" + big
    plain_cell = f"r = await chronum.arun(loads({big!r}), namespace=globals())"

    def new_view_cell(i: int) -> str:
        return "%%chronum --max-parallel 8\n" + flow_yaml(1000, f"bench1000_new{i}")

    def graph_cell(i: int) -> str:  # steps that take a while: the live view shows
        return "%%chronum\n" + flow_yaml(200, f"bench200_{i}", call="nap")
    probe = ("from chronum.notebook.kernel import current\n"
             "v = list(current().views.values())[-1]\n"
             "print(v.first_graph_at and v.first_graph_at - v.created_at)")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in ("%load_ext chronum", SETUP)]
    client = NotebookClient(nb, kernel_name="python3", timeout=600,
                            resources={"metadata": {"path": str(workdir)}})
    with_view: list[float] = []
    with_new_view: list[float] = []
    without: list[float] = []
    graph: list[float] = []

    async def run(source: str) -> Any:
        nb.cells.append(nbformat.v4.new_code_cell(source))
        index = len(nb.cells) - 1
        await client.async_execute_cell(nb.cells[index], index)
        return nb.cells[index]

    cpu_view: list[float] = []
    cpu_plain: list[float] = []
    cpu_probe = "import time as _t\nprint(_t.process_time())"

    async def timed(source: str, cpu: list[float]) -> Any:
        """Run ``source``; its kernel CPU seconds (all the kernel's threads) go to ``cpu``:
        steadier than wall time on a machine other work shares."""
        before = float((await run(cpu_probe)).outputs[0].text)
        cell = await run(source)
        cpu.append(float((await run(cpu_probe)).outputs[0].text) - before)
        return cell

    async with client.async_setup_kernel():
        for i in range(2):
            await client.async_execute_cell(nb.cells[i], i)
        await run(view_cell)  # warm-up: imports, first layout
        await run(plain_cell)
        for i in range(repeat):  # interleaved, so drift hits both sides alike
            with_view.append(_cell_seconds(await timed(view_cell, cpu_view)))
            without.append(_cell_seconds(await timed(plain_cell, cpu_plain)))
            with_new_view.append(_cell_seconds(await run(new_view_cell(i))))
            await run(graph_cell(i))
            text = (await run(probe)).outputs[0].text
            graph.append(float(text) if text.strip() != "None" else float("nan"))
    ratio = statistics.median(with_view) / statistics.median(without)
    return {
        "flow_1000_with_view_s": statistics.median(with_view),
        "flow_1000_new_flow_with_view_s": statistics.median(with_new_view),
        "flow_1000_no_display_s": statistics.median(without),
        "view_ratio": ratio, "view_ratio_budget": 1.2,
        "flow_1000_with_view_cpu_s": statistics.median(cpu_view),
        "flow_1000_no_display_cpu_s": statistics.median(cpu_plain),
        "view_cpu_ratio": statistics.median(cpu_view) / statistics.median(cpu_plain),
        "new_flow_view_ratio": statistics.median(with_new_view) / statistics.median(without),
        "graph_200_first_shown_s": statistics.median(graph), "graph_budget_s": 1.0,
        "repeat": repeat,
        "ok": ratio <= 1.2 and statistics.median(graph) <= 1.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(_measure(args.repeat, Path(tmp)))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"1,000-step flow: {result['flow_1000_with_view_s']:.2f}s with the live view, "
              f"{result['flow_1000_no_display_s']:.2f}s without: "
              f"{result['view_ratio']:.2f}x (budget 1.2x)")
        print(f"  kernel CPU: {result['flow_1000_with_view_cpu_s']:.2f}s with the view, "
              f"{result['flow_1000_no_display_cpu_s']:.2f}s without: "
              f"{result['view_cpu_ratio']:.2f}x")
        print(f"  a new 1,000-step flow each time (dot lays it out during the run): "
              f"{result['flow_1000_new_flow_with_view_s']:.2f}s, "
              f"{result['new_flow_view_ratio']:.2f}x")
        print(f"200-step graph first shown after {result['graph_200_first_shown_s']:.3f}s "
              "(budget 1 s)")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
