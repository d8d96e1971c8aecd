"""The notebook's live view: a warning mark for failures passed over, outputs in the detail."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("IPython")

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
        view = LiveView(flow, "r1", interval=0.01, publish=lambda *_: None)
        run = await api.arun(flow, db=tmp_path / "c.db", subscribers=[view], run_id="r1")
        view.flush()
        view.finish(run.status)
        return run, view

    run, view = asyncio.run(main())
    assert run.status == "succeeded" and run.outputs["produce"] == {"rows": "42"}
    assert ('<span class="chronum-state">⚠ succeeded with 1 failure (continued)</span>'
            in view.html("header"))
    assert view.snap.states["gated"] == "skipped"
    view.select("produce")  # its outputs are shown, though it printed nothing
    assert view.log_text() == "outputs:\n  rows = 42"


def test_a_plain_success_has_no_mark(tmp_path):
    flow = loads("name: f\nsteps:\n  - name: a\n    run: 'true'\n", filename="f.yaml")

    async def main():
        view = LiveView(flow, "r2", interval=0.01, publish=lambda *_: None)
        run = await api.arun(flow, db=tmp_path / "c.db", subscribers=[view], run_id="r2")
        view.flush()
        view.finish(run.status)
        return view

    assert '<span class="chronum-state">succeeded</span>' in asyncio.run(main()).html("header")
