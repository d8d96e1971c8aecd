"""The notebook's live view: a warning mark for failures passed over, outputs in the detail."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("ipywidgets")

from chronum import api
from chronum.notebook.view import LiveView
from chronum.spec import loads


def test_header_warns_of_continued_failures_and_detail_shows_outputs(tmp_path):
    flow = loads("name: f\nsteps:\n"
                 "  - name: produce\n    run: echo \"rows=42\" >> \"$CHRONUM_OUTPUT\"\n"
                 "  - name: flaky\n    run: exit 3\n    continueOnError: true\n"
                 "  - name: gated\n    needs: produce\n    if: steps.produce.outputs.rows < 9\n"
                 "    run: echo never\n", filename="f.yaml")

    async def main():
        view = LiveView(flow, "r1", interval=0.01)
        run = await api.arun(flow, db=tmp_path / "c.db", subscribers=[view], run_id="r1")
        view.finish(run.status)
        return run, view

    run, view = asyncio.run(main())
    assert run.status == "succeeded" and run.outputs["produce"] == {"rows": "42"}
    assert view.state_label.value == "⚠ succeeded with 1 failure (continued)"
    assert view.snap.states["gated"] == "skipped"
    assert "produce" in view.log_select.options  # listed for its outputs, though it printed nothing
    view.log_select.value = "produce"
    assert view.log_output.outputs[0]["text"] == "outputs:\n  rows = 42\n"


def test_a_plain_success_has_no_mark(tmp_path):
    flow = loads("name: f\nsteps:\n  - name: a\n    run: 'true'\n", filename="f.yaml")

    async def main():
        view = LiveView(flow, "r2", interval=0.01)
        run = await api.arun(flow, db=tmp_path / "c.db", subscribers=[view], run_id="r2")
        view.finish(run.status)
        return view

    assert asyncio.run(main()).state_label.value == "succeeded"
