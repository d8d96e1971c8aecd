"""The live view without a kernel: coalesced updates, state, cancel; the view's outputs are
counted where they are published (one call is one display or update message on the wire)."""

from __future__ import annotations

import asyncio
import shutil

import pytest

pytest.importorskip("IPython")

from chronum import api
from chronum.notebook.view import CANCEL_MIME, EMPTY, LiveView, on_comm_open
from chronum.spec import loads


class Screen:
    """Where a view publishes: every message, and what each display id shows now."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict, bool]] = []
        self.shown: dict[str, dict] = {}

    def __call__(self, display_id: str, bundle: dict, update: bool) -> None:
        assert update == (display_id in self.shown)  # shown once, then only updated
        self.sent.append((display_id, bundle, update))
        self.shown[display_id] = bundle


def _flow(n: int, *, retry: int = 0):
    lines = ["name: big", "maxParallel: 8", f"defaultRetry: {retry}", "steps:"]
    for i in range(n):
        lines += [f"  - name: s{i}", "    executor: python", "    call: work"]
        if i % 10:
            lines.append(f"    needs: [s{i - 1}]")
    return loads("\n".join(lines) + "\n", filename="big.yaml")


def _work():
    print("working")
    return 1


def test_a_thousand_step_run_costs_a_handful_of_output_updates(tmp_path):
    flow = _flow(1000)
    events: list[object] = []
    screen = Screen()

    async def main():
        view = LiveView(flow, "bench", publish=screen)
        flushes = 0
        flush = view.flush

        def counted_flush():
            nonlocal flushes
            flushes += 1
            flush()

        view.flush = counted_flush  # type: ignore[method-assign]
        run = await api.arun(flow, db=tmp_path / "c.db", namespace={"work": _work},
                             subscribers=[events.append, view], run_id="bench")
        view.flush()
        view.finish(run.status)
        view.settle(view.static_bundle())
        return run, view, flushes

    run, view, flushes = asyncio.run(main())
    assert run.status == "succeeded"
    assert len(events) > 3000  # started, log, succeeded per step
    shown = [m for m in screen.sent if not m[2]]
    updates = [m for m in screen.sent if m[2]]
    assert len(shown) == 6  # header, cancel, style, graph, table, log: each displayed once
    # At most one message per part per flush, plus the final picture.
    assert len(updates) <= 6 * (flushes + 2)
    assert len(updates) < len(events) / 20
    header = view.parts["header"].display_id
    assert screen.shown[header] == view.static_bundle()  # the final picture, in place
    assert 'data-run-id="bench"' in screen.shown[header]["text/html"]
    # every other output is empty now: the Cancel button is gone
    assert [b for i, b in screen.shown.items() if i != header] == [EMPTY] * 5
    assert not any(CANCEL_MIME in b for b in screen.shown.values())


def test_view_follows_retries_logs_and_failure(tmp_path):
    flow = loads("name: f\nsteps:\n  - name: ok\n    run: echo fine\n"
                 "  - name: bad\n    run: echo oops; exit 3\n    retry: {limit: 1, backoff: "
                 "{base: 0.01}}\n", filename="f.yaml")
    screen = Screen()

    async def main():
        view = LiveView(flow, "r1", interval=0.01, publish=screen)
        run = await api.arun(flow, db=tmp_path / "c.db", subscribers=[view], run_id="r1")
        view.flush()
        view.finish(run.status)
        return view

    view = asyncio.run(main())
    assert view.snap.states == {"ok": "succeeded", "bad": "failed"}
    assert view.snap.attempts["bad"] == 2 and view.snap.exit_codes["bad"] == 3
    assert '<span class="chronum-state">failed</span>' in view.html("header")
    # the failure's log is shown without a click
    assert '<div class="chronum-log" data-step="bad">' in view.html("log")
    assert view.log_text() == "oops\noops"
    assert 'data-step="bad" data-state="failed"' in view.html("table")
    bundle = view.static_bundle()
    assert bundle["text/plain"] == "<chronum run f: failed (2 steps)>"
    # The failed step's log is shown open, its reason in the summary.
    assert ('<details class="chronum-log" data-step="bad" open><summary>bad '
            '<span class="chronum-reason">exited with code 3</span>') in bundle["text/html"]


def test_the_log_panel_shows_why_a_silent_step_failed(tmp_path):
    flow = loads("name: f\nsteps:\n  - name: a\n    run: echo A\n  - name: quiet\n"
                 "    run: 'true'\n  - name: c\n    run: echo C\n    needs: [a, quiet]\n"
                 "  - name: d\n    run: exit 4\n    needs: [c]\n", filename="f.yaml")

    async def main():
        view = LiveView(flow, "r2", interval=0.01, publish=Screen())
        assert view.log_text() == "no step has printed yet"
        run = await api.arun(flow, db=tmp_path / "c.db", subscribers=[view], run_id="r2")
        view.flush()
        view.finish(run.status)
        return view

    view = asyncio.run(main())
    # `d` printed nothing but failed, so it is shown, with why (the panel is never blank)
    assert view.log_text() == "d: exited with code 4"
    assert "d: exited with code 4</pre>" in view.html("log")
    view.select("a")  # picked by hand
    assert view.log_text() == "A"


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is not installed")
def test_graph_is_laid_out_once_and_recoloured_by_its_style(tmp_path):
    flow = loads("name: g\nsteps:\n  - name: a\n    run: 'true'\n  - name: b\n    run: 'true'\n"
                 "    needs: [a]\n    retry: 2\n", filename="g.yaml")
    screen = Screen()

    async def main():
        view = LiveView(flow, "abc", interval=0.01, publish=screen)
        await view.layout()
        svg_text = view.html("graph")
        run = await api.arun(flow, db=tmp_path / "c.db", subscribers=[view], run_id="abc")
        view.flush()
        view.finish(run.status)
        return view, svg_text

    view, svg_text = asyncio.run(main())
    graph_id = view.parts["graph"].display_id
    assert [m for m in screen.sent if m[0] == graph_id and "<svg" in str(m[1])] \
        == [(graph_id, {"text/html": svg_text}, True)]  # sent once, never re-rendered
    assert 'data-step="a"' in svg_text and 'id="chronum_abc_1_a3"' in svg_text
    style_id = view.parts["style"].display_id
    assert sum(m[0] == style_id for m in screen.sent) > 2  # recoloured as the run went on
    assert "#chronum_abc_0,#chronum_abc_1{--chronum-state:succeeded;" in view.html("style")


def test_cancel_cancels_the_attached_task_only():
    flow = loads("name: c\nsteps:\n  - name: a\n    run: 'true'\n", filename="c.yaml")

    async def main():
        view = LiveView(flow, "c1", publish=Screen())
        task = asyncio.ensure_future(asyncio.sleep(10))
        other = asyncio.ensure_future(asyncio.sleep(10))
        view.attach(task)
        view.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not other.done()
        other.cancel()
        return view

    view = asyncio.run(main())
    assert view.cancel_requested


class Comm:
    """The kernel side of a comm, as ipykernel's Comm is used by ``on_comm_open``."""

    def __init__(self) -> None:
        self.replies: list[dict] = []
        self.handler = None

    def send(self, data: dict) -> None:
        self.replies.append(data)

    def on_msg(self, handler) -> None:
        self.handler = handler

    def receive(self, data: dict) -> None:
        self.handler({"content": {"data": data}})


def test_the_cancel_control_asks_the_kernel_and_cancels_through_its_comm():
    flow = loads("name: c\nsteps:\n  - name: a\n    run: 'true'\n", filename="c.yaml")
    screen = Screen()

    async def main():
        view = LiveView(flow, "cc1", publish=screen)
        (bundle,) = [b for b in screen.shown.values() if CANCEL_MIME in b]
        assert bundle[CANCEL_MIME] == {"run_id": "cc1", "target": "chronum"}
        assert bundle["text/plain"] == "(to cancel this run: %chronum cancel cc1)"
        task = asyncio.ensure_future(asyncio.sleep(10))
        view.attach(task)
        comm = Comm()
        on_comm_open(comm, {"content": {"data": {"action": "query", "run_id": "cc1"}}})
        assert comm.replies == [{"run_id": "cc1", "live": True}] and not task.done()
        comm.receive({"action": "cancel"})
        with pytest.raises(asyncio.CancelledError):
            await task
        assert view.cancel_requested
        view.finish("cancelled")
        # a page opened again later asks about a run that is over: no button, and the final
        # picture to put in place of the live outputs it shows
        gone = Comm()
        on_comm_open(gone, {"content": {"data": {"action": "query", "run_id": "cc1"}}})
        unknown = Comm()  # or about a run this kernel never had: nothing
        on_comm_open(unknown, {"content": {"data": {"action": "cancel", "run_id": "zz"}}})
        return view, gone.replies + unknown.replies

    view, replies = asyncio.run(main())
    assert replies == [{"run_id": "cc1", "live": False, "final": view.static_bundle()},
                       {"run_id": "zz", "live": False}]
    assert replies[0]["final"]["text/plain"] == "<chronum run c: cancelled (1 step)>"
