"""The live view's polish without a kernel: the log panel follows the step printing (then the
failure) until a step is picked, a timeout is labelled, running steps show their time."""

from __future__ import annotations

import asyncio
import base64
import re
import shutil

import pytest

pytest.importorskip("IPython")

from chronum import api
from chronum.eventbus import LogLine, RunStarted, StepStarted
from chronum.notebook.view import LiveView
from chronum.spec import loads

from .test_view import Screen

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is needed")


def _run(flow, tmp_path, view: LiveView, run_id: str):
    async def main():
        await view.layout()
        run = await api.arun(flow, db=tmp_path / "v.db", subscribers=[view], run_id=run_id)
        view.flush()
        view.finish(run.status)
        return run

    return asyncio.run(main())


def test_the_log_panel_follows_the_printing_step_until_one_is_picked():
    flow = loads("name: f\nsteps:\n  - name: a\n    run: x\n  - name: b\n    run: x\n",
                 filename="f.yaml")
    view = LiveView(flow, "r1", interval=60, publish=Screen())
    assert "no step has printed yet</pre>" in view.html("log")
    view(RunStarted(run_id="r1", flow="f", steps=("a", "b")))
    view(StepStarted(run_id="r1", step="a", attempt=1))
    view(LogLine(run_id="r1", step="a", stream="stdout", line="from a"))
    view.flush()
    assert 'data-step="a"' in view.html("log") and "from a</pre>" in view.html("log")
    view(LogLine(run_id="r1", step="b", stream="stdout", line="from b"))
    view.flush()
    assert 'data-step="b"' in view.html("log") and "from b</pre>" in view.html("log")
    view.select("a")  # picked (handle.view.select): the panel stays there
    view(LogLine(run_id="r1", step="b", stream="stdout", line="more b"))
    view.flush()
    assert 'data-step="a"' in view.html("log") and "from a</pre>" in view.html("log")


def test_running_steps_show_their_elapsed_time_in_the_table():
    flow = loads("name: f\nsteps:\n  - name: a\n    run: x\n", filename="f.yaml")
    now = [100.0]
    view = LiveView(flow, "r1", interval=60, clock=lambda: now[0], publish=Screen())
    view(RunStarted(run_id="r1", flow="f", steps=("a",)))
    view(StepStarted(run_id="r1", step="a", attempt=1))
    now[0] = 107.4
    view._tick()  # the once-a-second tick that moves the clocks on screen
    assert '<td class="chronum-reason">running for 7 s</td>' in view.html("table")


@needs_dot
def test_a_timeout_is_labelled_in_the_table_the_graph_and_the_final_picture(tmp_path):
    flow = loads("name: slow\nsteps:\n  - name: nap\n    run: sleep 5\n    timeout: 0.3\n",
                 filename="f.yaml")
    view = LiveView(flow, "r1", interval=0.01, publish=Screen())
    run = _run(flow, tmp_path, view, "r1")
    assert run.status == "failed"
    assert '<td class="chronum-reason">timed out after 0.3 s</td>' in view.html("table")
    # The live graph: its stylesheet shows the node's hidden timeout text.
    assert "timed out after 0.3 s</text>" in view.html("graph")
    assert re.search(r"#chronum_r1_0_t\b[^{]*\{display:inline\}", view.html("style"))
    page = view.static_bundle()["text/html"]
    (image,) = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', page)
    baked = base64.b64decode(image).decode()
    assert re.search(r'class="chronum-timeout" text-anchor[^>]*>timed out after 0.3 s<', baked)
    assert ('<details class="chronum-log" data-step="nap" open><summary>nap '
            '<span class="chronum-reason">timed out after 0.3 s</span>') in page


@needs_dot
def test_running_steps_show_their_elapsed_time_as_a_node_badge_and_a_legend_is_shown():
    flow = loads("name: f\nsteps:\n  - name: a\n    run: x\n", filename="f.yaml")
    now = [100.0]
    view = LiveView(flow, "r1", interval=60, clock=lambda: now[0], publish=Screen())
    asyncio.run(view.layout())
    assert 'class="chronum-legend"' in view.html("graph")
    assert 'id="chronum_r1_0_e" class="chronum-elapsed-badge"' in view.html("graph")
    view(RunStarted(run_id="r1", flow="f", steps=("a",)))
    view(StepStarted(run_id="r1", step="a", attempt=1))
    now[0] = 107.4
    view._tick()
    assert '#chronum_r1_0_e::after{content:"7 s"}' in view.html("style")
    view.finish("cancelled")
    assert "::after" not in view._style()  # a finished run shows no clocks


def test_a_view_shown_late_shows_the_log_of_the_step_that_printed_before():
    flow = loads("name: f\nsteps:\n  - name: a\n    run: x\n", filename="f.yaml")
    screen = Screen()
    view = LiveView(flow, "r1", interval=60, build=False, publish=screen)
    view(RunStarted(run_id="r1", flow="f", steps=("a",)))
    view(StepStarted(run_id="r1", step="a", attempt=1))
    view(LogLine(run_id="r1", step="a", stream="stdout", line="early"))
    assert screen.sent == []  # nothing is shown before the view is due
    view.build()
    assert 'data-step="a"' in view.html("log") and "early</pre>" in view.html("log")
    assert '<span class="chronum-state">running</span>' in view.html("header")
