"""The live view without a kernel: coalesced updates, state, cancel; widget sends are counted
at ipywidgets' own send method, so what is counted is what would go over the wire."""

from __future__ import annotations

import asyncio
import shutil

import pytest

widgets = pytest.importorskip("ipywidgets")

from chronum import api  # noqa: E402
from chronum.notebook.view import LiveView  # noqa: E402
from chronum.spec import loads  # noqa: E402


def _flow(n: int, *, retry: int = 0):
    lines = ["name: big", "maxParallel: 8", f"defaultRetry: {retry}", "steps:"]
    for i in range(n):
        lines += [f"  - name: s{i}", "    executor: python", "    call: work"]
        if i % 10:
            lines.append(f"    needs: [s{i - 1}]")
    return loads("\n".join(lines) + "\n", filename="big.yaml")


@pytest.fixture
def sends(monkeypatch):
    counted: list[dict] = []
    original = widgets.Widget._send

    def counting(self, msg, buffers=None):
        counted.append(msg)
        return original(self, msg, buffers)

    monkeypatch.setattr(widgets.Widget, "_send", counting)
    return counted


def _work():
    print("working")
    return 1


def test_a_thousand_step_run_costs_a_handful_of_widget_updates(tmp_path, sends):
    flow = _flow(1000)
    events: list[object] = []

    async def main():
        view = LiveView(flow, "bench")
        flushes = 0
        flush = view.flush

        def counted_flush():
            nonlocal flushes
            flushes += 1
            flush()

        view.flush = counted_flush  # type: ignore[method-assign]
        sends.clear()
        run = await api.arun(flow, db=tmp_path / "c.db", namespace={"work": _work},
                             subscribers=[events.append, view], run_id="bench")
        view.finish(run.status)
        return run, view, flushes

    run, view, flushes = asyncio.run(main())
    assert run.status == "succeeded"
    assert len(events) > 3000  # started, log, succeeded per step
    updates = [m for m in sends if m.get("method") == "update"]
    # At most one message per widget (progress, state, elapsed, table, ...) per flush.
    assert len(updates) <= 8 * (flushes + 2)
    assert len(updates) < len(events) / 20
    assert view.progress.value == 1000 and view.state_label.value == "succeeded"


def test_view_follows_retries_logs_and_failure(tmp_path, sends):
    flow = loads("name: f\nsteps:\n  - name: ok\n    run: echo fine\n"
                 "  - name: bad\n    run: echo oops; exit 3\n    retry: {limit: 1, backoff: "
                 "{base: 0.01}}\n", filename="f.yaml")

    async def main():
        view = LiveView(flow, "r1", interval=0.01)
        run = await api.arun(flow, db=tmp_path / "c.db", subscribers=[view], run_id="r1")
        view.finish(run.status)
        return view

    view = asyncio.run(main())
    assert view.snap.states == {"ok": "succeeded", "bad": "failed"}
    assert view.snap.attempts["bad"] == 2 and view.snap.exit_codes["bad"] == 3
    assert view.state_label.value == "failed"
    assert view.log_select.value == "bad"  # the failure's log is shown without a click
    assert view.log_output.outputs[0]["text"] == "oops\noops\n"
    assert 'data-step="bad" data-state="failed"' in view.table.value
    assert all(m["state"] != {} for m in sends if m.get("method") == "update")
    bundle = view.static_bundle()
    assert bundle["text/plain"] == "<chronum run f: failed (2 steps)>"
    # The failed step's log is shown open, its reason in the summary.
    assert ('<details class="chronum-log" data-step="bad" open><summary>bad '
            '<span class="chronum-reason">exited with code 3</span>') in bundle["text/html"]


def test_the_log_dropdown_offers_the_steps_that_printed_and_keeps_the_one_shown(tmp_path):
    flow = loads("name: f\nsteps:\n  - name: a\n    run: echo A\n  - name: quiet\n"
                 "    run: 'true'\n  - name: c\n    run: echo C\n    needs: [a, quiet]\n"
                 "  - name: d\n    run: exit 4\n    needs: [c]\n", filename="f.yaml")

    async def main():
        view = LiveView(flow, "r2", interval=0.01)
        assert view.log_select.options == () and view.log_select.value is None
        run = await api.arun(flow, db=tmp_path / "c.db", subscribers=[view], run_id="r2")
        view.finish(run.status)
        return view

    view = asyncio.run(main())
    # file order; `quiet` printed nothing; `d` printed nothing either but failed, so it is
    # shown, with why (the panel is never blank)
    assert view.log_select.options == ("a", "c", "d")
    assert view.log_select.value == "d"
    assert view.log_output.outputs[0]["text"] == "d: exited with code 4\n"
    view.log_select.value = "a"  # a click in the dropdown
    assert view.log_output.outputs[0]["text"] == "A\n"


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is not installed")
def test_graph_is_laid_out_once_and_recoloured_by_its_style(tmp_path):
    flow = loads("name: g\nsteps:\n  - name: a\n    run: 'true'\n  - name: b\n    run: 'true'\n"
                 "    needs: [a]\n    retry: 2\n", filename="g.yaml")

    async def main():
        view = LiveView(flow, "abc", interval=0.01)
        await view.layout()
        svg_text = view.graph_box.value
        run = await api.arun(flow, db=tmp_path / "c.db", subscribers=[view], run_id="abc")
        view.finish(run.status)
        return view, svg_text

    view, svg_text = asyncio.run(main())
    assert view.graph_box.value == svg_text  # never re-rendered
    assert 'data-step="a"' in svg_text and 'id="chronum_abc_1_a3"' in svg_text
    style = view.style_box.value
    assert "#chronum_abc_0,#chronum_abc_1{--chronum-state:succeeded;" in style


def test_cancel_button_cancels_the_attached_task_only():
    flow = loads("name: c\nsteps:\n  - name: a\n    run: 'true'\n", filename="c.yaml")

    async def main():
        view = LiveView(flow, "c1")
        task = asyncio.ensure_future(asyncio.sleep(10))
        view.attach(task)
        view.cancel_button.click()
        with pytest.raises(asyncio.CancelledError):
            await task
        return view

    view = asyncio.run(main())
    assert view.cancel_requested and view.cancel_button.disabled
