"""A 10,000-item fan-out in the notebook's live view: one graph node with a counter and a bar,
one table row with its instances folded under it, updates batched, and a quick first paint."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

pytest.importorskip("IPython")

from chronum import api
from chronum.notebook.view import LiveView
from chronum.render.html import run_bundle
from chronum.spec import loads

N = 10_000


def _noop(item):
    if item == 4321:
        raise ValueError("this one fails")
    return None


class Screen:
    """Where the view publishes: every display and update message."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict, bool]] = []

    def __call__(self, display_id: str, bundle: dict, update: bool) -> None:
        self.sent.append((display_id, bundle, update))


def test_a_ten_thousand_item_fanout_in_the_live_view(tmp_path):
    flow = loads(f"""
name: wide
maxParallel: 4
params: {{n: "{list(range(N))}"}}
steps:
  - {{name: prepare, run: "true"}}
  - {{name: each, executor: python, call: noop, foreach: {{param: n}}, needs: [prepare],
     continueOnError: true}}
  - {{name: done, run: "true", needs: [each]}}
""".replace("'", ""), filename="wide.yaml")
    flushes: list[float] = []
    events: list[object] = []
    screen = Screen()

    async def main():
        view = LiveView(flow, "wide1", interval=0.25, publish=screen)
        await view.layout()
        flush = view.flush

        def timed_flush():
            start = time.perf_counter()
            flush()
            flushes.append(time.perf_counter() - start)

        view.flush = timed_flush  # type: ignore[method-assign]
        screen.sent.clear()
        run = await api.arun(flow, db=tmp_path / "c.db", namespace={"noop": _noop},
                             subscribers=[events.append, view], run_id="wide1")
        view.flush()
        view.finish(run.status)
        return run, view

    run, view = asyncio.run(main())
    assert run.status == "succeeded"
    assert len(events) > 2 * N
    # batched: a few messages per flush, not one per event
    updates = [m for m in screen.sent if m[2]]
    assert len(updates) < len(events) / 100
    assert max(flushes) < 1.0  # each paint of the 10,000 instances, the first included
    assert view.first_graph_at is not None and view.first_graph_at - view.created_at < 1.0
    # the graph: three nodes, the fan-out one with its counter and bar
    picture = view.html("graph")
    assert picture.count('class="node"') == 3
    assert f">{N}/{N}</text>" in picture and 'id="chronum_wide1_1_bar"' in picture
    # the table: three rows, the instances folded under the fan-out row (failed first, open)
    table = view.html("table")
    assert re.findall(r'<tr data-step="(\w+)"', table) == ["prepare", "each", "done"]
    assert '<details open><summary class="chronum-group-count">' \
           f"{N}/{N} ✓{N - 1} ✗1</summary>" in table
    assert table.index('data-step="each[4321]"') < table.index('data-step="each[0]"')
    assert table.count("<tr data-step=\"each[") == 40 and f"and {N - 40:,} more" in table
    # the flow's steps, not its instances
    assert '<progress class="chronum-progress" value="3" max="3">' in view.html("header")
    assert any("this one fails" in line for line in view.log_lines("each[4321]"))


def test_a_finished_fanout_is_drawn_from_its_rows(tmp_path):
    flow = loads("name: f\nsteps:\n  - {name: each, run: 'true', foreach: [a, b, c]}\n",
                 filename="f.yaml")
    run = api.run(flow, db=tmp_path / "c.db")
    from chronum.store import Store

    with Store(tmp_path / "c.db") as store:
        step_rows = store.step_rows(run.run_id)
    bundle = run_bundle(flow, run.run_id, run.status, 0.1, step_rows, None)
    html = bundle["text/html"]
    assert '<span class="chronum-progress">1/1</span>' in html
    assert '<summary class="chronum-group-count">3/3 ✓3 ✗0</summary>' in html
    assert "<details>" in html  # nothing failed: folded
