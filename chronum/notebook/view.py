"""The live view of a run: plain HTML outputs updated in place, at a few updates a second.

What a notebook saves is always a picture: the view is a handful of ``display_data`` outputs
(header, Cancel, the graph's colours, the graph, the step table, the log tail), each updated in
place through its display id, never a widget. A kernel that dies outright (SIGKILL), or a page
closed while the run went on, leaves a picture of the run as it last was, never "model not
found". When the run ends the header's output becomes the final picture (``static_bundle``) and
the other outputs become empty.

Events only change Python state and set a dirty flag; a timer (``interval``, 0.25 s) turns the
state into display updates, and only the parts whose HTML changed are sent. So a 1,000-step
flow costs a handful of messages a second, not one per event. The graph is laid out once
(``svg.layout``, an asyncio subprocess), sent once, and recoloured by sending its small
``<style>`` part again (a page's ``<style>`` applies to the whole page).

The Cancel button is the one interactive part: an ``application/vnd.chronum.cancel+json``
output that chronum-lab (the package's JupyterLab extension) draws as a button. The button asks
the kernel over the ``chronum`` comm whether the run is live and shows only if it is, so a
saved notebook reopened after its kernel died shows no button; other front ends show the
``text/plain`` line. A click sends ``cancel`` over the same comm (``on_comm_open``).

The outputs may be shown later than the view is made (``build=False``, then ``build()``): the
view keeps the run's state from its first event, so outputs shown a quarter of a second into a
run show everything that happened before.
"""

from __future__ import annotations

import asyncio
import html
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from ..eventbus import (
    Event,
    LogLine,
    RunFinished,
    RunStarted,
    StepExpanded,
    StepFailed,
)
from ..executors.python import on_thread_end, still_running
from ..model import Flow
from ..render import svg
from ..render.groups import Group
from ..render.html import (
    Snapshot,
    header_html,
    legend_html,
    plain_text,
    reason_label,
    static_html,
    table_html,
)
from ..render.svg import prefix_for, remember_graph
from ..state import FINISHED, RunState, StepState, run_words

__all__ = ["CANCEL_MIME", "COMM_TARGET", "LiveView", "Part", "on_comm_open"]

#: Rows of the live table before it switches to counts plus the steps worth looking at.
TABLE_LIMIT = 40
LOG_TAIL = 200
#: Lines of the followed step's log shown live (its whole kept tail is in the final picture).
LOG_SHOWN = 40
#: The output that chronum-lab draws as the Cancel button.
CANCEL_MIME = "application/vnd.chronum.cancel+json"
#: The comm target the button talks to (registered with the kernel state, ``kernel.py``).
COMM_TARGET = "chronum"
#: The view's outputs, in the order they appear in the cell.
PARTS = ("header", "cancel", "style", "graph", "table", "log")
BLOCKING_TOOLTIP = ("flow.run() blocks the kernel: stop it with the kernel's Stop button "
                    "(or use await flow.arun())")

#: Sends one output: (display id, mimebundle, whether it replaces the output with that id).
Publish = Callable[[str, dict[str, Any], bool], None]

#: Live views by run id, for the Cancel button's comm (weak: a view lives as long as its cell
#: or its kernel state keeps it).
_LIVE: weakref.WeakValueDictionary[str, LiveView] = weakref.WeakValueDictionary()


def _publish(display_id: str, bundle: dict[str, Any], update: bool) -> None:
    from IPython.display import display

    display(bundle, raw=True, display_id=display_id, update=update)  # type: ignore[no-untyped-call]


class Part:
    """One output of the view: its display id and the bundle last sent (sent again only when
    it changed)."""

    __slots__ = ("display_id", "publish", "sent")

    def __init__(self, display_id: str, publish: Publish) -> None:
        self.display_id = display_id
        self.publish = publish
        self.sent: dict[str, Any] | None = None

    def show(self, bundle: dict[str, Any]) -> None:
        self.publish(self.display_id, bundle, False)
        self.sent = bundle

    def update(self, bundle: dict[str, Any], raw: bool = True, *, force: bool = False) -> None:
        """Replace the output (``raw`` for the signature of IPython's ``DisplayHandle``);
        ``force``: even with what it shows already."""
        if force or bundle != self.sent:  # unchanged values would still cost a message
            self.publish(self.display_id, bundle, True)
            self.sent = bundle

    @property
    def html(self) -> str:
        return str((self.sent or {}).get("text/html", ""))


def _html(run_id: str, name: str, body: str) -> dict[str, Any]:
    # Every part carries the run's id: a test or a stylesheet finds the run's outputs by it.
    return {"text/html": f'<div class="chronum-view chronum-live chronum-part-{name}" '
                         f'data-run-id="{run_id}">{body}</div>'}


#: What a part becomes when the run has ended (the header's output holds the whole picture).
EMPTY: dict[str, Any] = {"text/plain": ""}


class LiveView:
    """One run's live outputs: header, Cancel, graph, step table and the log tail."""

    def __init__(self, flow: Flow, run_id: str, *, interval: float = 0.25,
                 clock: Callable[[], float] = time.monotonic, build: bool = True,
                 publish: Publish | None = None) -> None:
        self.flow = flow
        self.run_id = run_id
        self.interval = interval
        self.clock = clock
        self.publish = publish or _publish
        self.snap = Snapshot(flow, run_id, status="running")
        self.graph: svg.Layout | None = None
        self.task: asyncio.Future[Any] | None = None
        self.cancel_requested = False
        self.finished = False
        self.first_graph_at: float | None = None  # clock() when the SVG was first sent
        self.created_at = clock()
        #: The run as its events describe it (``chronum.state``); ``snap`` shows it.
        self.state = RunState.new(run_id, flow.step_names)
        self._log_lines: dict[str, deque[str]] = {}
        self._log_dirty: set[str] = set()
        self._dirty = False
        self._timer: asyncio.TimerHandle | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._run_started: float | None = None
        self.started_at_epoch: float | None = None  # the run's own start, from its event
        #: The step whose log is shown.
        self._selected: str | None = None
        self._log_shown: str | None = None  # the step whose log the log output last showed
        #: The log panel follows the step printing, then the first that fails, unless a step
        #: was picked (``select``).
        self._picked = False
        self._failed_shown = False
        self._last_logged: str | None = None
        #: clock() at each running step's current attempt start: its elapsed time.
        self._step_started: dict[str, float] = {}
        #: Fan-out steps' instances: each instance's group (``snap.groups`` by step).
        self._group_of: dict[str, Group] = {}
        #: The graph's counters changed since the picture was last sent, and when that was.
        self._counts_dirty = False
        self._counts_sent = 0.0
        #: A blocking ``flow.run()`` in a cell: its run has a loop of its own while the
        #: kernel's waits, so no click reaches it until the run ends.
        self.blocking = threading.current_thread() is not threading.main_thread()
        key = uuid.uuid4().hex[:8]
        self.parts: dict[str, Part] | None = None
        self._ids = {name: f"chronum-{run_id}-{name}-{key}" for name in PARTS}
        #: Sends the final picture again (set by the cell): a step's thread that outlived its
        #: cancel ended after the run did.
        self.refresh: Callable[[], None] | None = None
        #: HTML the final picture ends with (the timeline, with %config ChronumMagics.timeline).
        self.footer = ""
        _LIVE[run_id] = self
        if build:
            self.build()

    @property
    def built(self) -> bool:
        return self.parts is not None

    @property
    def live(self) -> bool:
        """Whether a Cancel click can still stop this run."""
        return self.built and not self.finished and not self.blocking

    def html(self, part: str) -> str:
        """The HTML last sent for ``part`` (one of ``PARTS``); "" before the view is shown."""
        return self.parts[part].html if self.parts is not None else ""

    # -- outputs --------------------------------------------------------------------------

    def build(self) -> Part:
        """Show the outputs with the state so far (the graph too if it is laid out); the
        header's output, which the final picture replaces."""
        if self.parts is None:
            self.parts = {name: Part(self._ids[name], self.publish) for name in PARTS}
            if self._following() and self._last_logged is not None:
                self._selected = self._last_logged  # a step printed before the view came
            self._dirty = False
            graph = self._graph_html() if self.graph is not None else ""
            initial = {"header": self._header_html(), "style": self._style(), "graph": graph,
                       "table": self._table(), "log": self._log_html()}
            for name, part in self.parts.items():
                part.show(self._cancel_bundle() if name == "cancel"
                          else _html(self.run_id, name, initial[name]))
            if self.graph is not None:
                self._graph_sent()
            if self._run_started is not None and not self.finished:
                self._schedule_tick()
        return self.parts["header"]

    def _cancel_bundle(self) -> dict[str, Any]:
        data: dict[str, Any] = {"run_id": self.run_id, "target": COMM_TARGET}
        if self.blocking:
            data.update(disabled=True, tooltip=BLOCKING_TOOLTIP)
        return {CANCEL_MIME: data,
                "text/plain": f"(to cancel this run: %chronum cancel {self.run_id})"}

    def settle(self, bundle: dict[str, Any], *, force: bool = False) -> None:
        """The run is over: the header's output becomes ``bundle`` (the final picture) and
        the others become empty; the Cancel button goes with them. ``force``: sent again
        (for the cell running now: nbclient keeps only its messages)."""
        if self.parts is None:
            return
        for name, part in self.parts.items():
            part.update(bundle if name == "header" else EMPTY, force=force)

    def _send(self, name: str, body: str) -> None:
        assert self.parts is not None
        self.parts[name].update(_html(self.run_id, name, body))

    def _header_html(self) -> str:
        done = sum(1 for s in self.snap.states.values() if s in FINISHED)
        return header_html(self.snap, self._status_words(), self._elapsed(), done, live=True)

    def summary_bundle(self) -> dict[str, Any]:
        """One line about the run, for a second display of it: where its view is, how far it
        is, how to wait for it."""
        snap = self.snap
        done = sum(1 for s in snap.states.values() if s in FINISHED)
        text = (f"run {self.run_id} of {self.flow.name}: {snap.status}, {done}/"
                f"{len(self.flow.steps)} steps done; its live view is in the cell that "
                "started it; `await handle.wait()` gives the Run")
        link = (f'<div class="chronum-summary" data-run-id="{self.run_id}">run '
                f'<a href="#chronum-run-{self.run_id}"><code>{self.run_id}</code></a> of '
                f"<b>{html.escape(self.flow.name)}</b>: {snap.status}, {done}/"
                f"{len(self.flow.steps)} steps done (its live view is in the cell that "
                "started it; <code>await handle.wait()</code> gives the Run)</div>")
        return {"text/plain": text, "text/html": link}

    def static_bundle(self) -> dict[str, Any]:
        """The final picture left in the notebook when the run ends."""
        self.snap.logs = {k: "\n".join(v) for k, v in self._log_lines.items()}
        return {
            "text/plain": plain_text(self.flow.name, self.snap.status, len(self.flow.steps)),
            "text/html": static_html(self.snap, self.graph) + self.footer,
        }

    def log_lines(self, step: str) -> tuple[str, ...]:
        """The kept tail of ``step``'s log."""
        return tuple(self._log_lines.get(step, ()))

    # -- graph ----------------------------------------------------------------------------

    async def layout(self) -> None:
        """Lay the graph out (once) and show it; without ``dot`` the table is the picture."""
        self.graph = await svg.layout(self.flow, prefix_for(self.run_id))
        remember_graph(self.run_id, self.graph)
        if self.graph is not None and self.built and not self.finished:
            self._show_graph()

    def _graph_html(self) -> str:
        assert self.graph is not None
        picture = svg.counted(self.graph, self.snap.groups) if self.snap.groups \
            else self.graph.svg
        return (f'{legend_html()}<div class="chronum-graph" style="overflow:auto;'
                f'max-height:{svg.GRAPH_MAX_HEIGHT}px">{picture}</div>')

    def _show_graph(self) -> None:
        self._send("style", self._style())
        self._send("graph", self._graph_html())
        self._graph_sent()

    def _graph_sent(self) -> None:
        if self.first_graph_at is None:
            self.first_graph_at = self.clock()
        self._counts_dirty, self._counts_sent = False, self.clock()

    def _style(self) -> str:
        if self.graph is None:
            return ""
        return svg.stylesheet(self.graph, self.snap.states, self.snap.attempts,
                              self.snap.timed_out(), self._running_for())

    def _running_for(self) -> dict[str, float]:
        """Seconds each running step has been in its current attempt."""
        if self.finished or not self._step_started:
            return {}
        now = self.clock()
        return {name: now - started for name, started in self._step_started.items()}

    def _table(self) -> str:
        rows = self.snap.rows()
        running = self._running_for()
        for row in rows:
            if row["step"] in running:
                row["elapsed_s"] = running[row["step"]]
        return f'<div class="chronum-table-box">{table_html(rows, limit=TABLE_LIMIT)}</div>'

    # -- events ---------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        """Bus subscriber: update state now, the outputs at the next tick."""
        step = event.step
        snap = self.snap
        if isinstance(event, LogLine):
            if step is not None:
                lines = self._log_lines.get(step)
                if lines is None:
                    lines = self._log_lines[step] = deque(maxlen=LOG_TAIL)
                lines.append(event.line)
                self._log_dirty.add(step)
                self._last_logged = step
                if step == self._selected or self._following():
                    self._mark()
            return
        changed = self.state.apply(event)
        if isinstance(event, RunStarted):
            self._run_started = self.clock()
            self.started_at_epoch = event.at
            self._schedule_tick()
        elif isinstance(event, RunFinished):
            snap.status = event.status
            snap.elapsed_s = event.duration_s
        elif step is not None and changed is not None:
            if changed.item is not None:
                self._show_instance(step, changed, event)
            else:
                if type(event) is StepExpanded:
                    group = snap.groups[step] = Group(step, event.instances)
                    self._group_of.update(dict.fromkeys(event.instances, group))
                    self._counts_dirty = True
                self._show_step(step, changed, event)
        self._mark()

    def _show_instance(self, step: str, changed: StepState, event: Event) -> None:
        """An instance of a fan-out step: counted in its group, never a row or node itself."""
        group = self._group_of.get(step)
        if group is None:
            return
        group.set(step, changed.status)
        self._counts_dirty = True
        if isinstance(event, StepFailed) and self._selected is None:
            self._select(step)

    def _show_step(self, step: str, changed: StepState, event: Event) -> None:
        snap = self.snap
        snap.states[step] = changed.status
        if changed.reason:
            snap.reasons[step] = changed.reason
        else:
            snap.reasons.pop(step, None)
        if changed.status == "running":
            self._step_started[step] = self.clock()
        else:
            self._step_started.pop(step, None)
        if changed.attempts:
            snap.attempts[step] = changed.attempts
        if changed.exit_code is not None or changed.status != "running":
            snap.exit_codes[step] = changed.exit_code
        if changed.duration_s is not None:
            snap.durations[step] = changed.duration_s
        if changed.status in ("cancelled", "failed") and step in still_running(self.run_id):
            self._watch_thread(step, changed.status)
        if changed.outputs and changed.status in FINISHED:
            # The step detail shows its outputs under its log: listed even without a log.
            if step not in self._log_lines:
                self._log_lines[step] = deque(maxlen=LOG_TAIL)
            self._log_dirty.add(step)
        if isinstance(event, StepFailed) and not self._picked and not self._failed_shown:
            self._failed_shown = True
            self._select(step)  # show why it failed without a click

    def _watch_thread(self, step: str, status: str) -> None:
        """The step ended but its function's thread runs on: shown as ``background``
        ("cancelled — still running in the background") until that thread ends."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.snap.states[step] = "background"

        def ended() -> None:
            if self.snap.states.get(step) == "background":
                self.snap.states[step] = status
            self._dirty = True
            if self.finished:
                self.flush()
                if self.refresh is not None:
                    self.refresh()
            else:
                self._mark()

        def from_thread() -> None:
            loop.call_soon_threadsafe(ended)

        if not on_thread_end(self.run_id, step, from_thread):
            self.snap.states[step] = status

    def _mark(self) -> None:
        self._dirty = True
        if self._timer is None and not self.finished and self.built:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(self.interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()

    def _schedule_tick(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._ticker is not None:
            self._ticker.cancel()
        self._ticker = loop.call_later(1.0, self._tick)

    def _tick(self) -> None:
        if self.finished or not self.built:
            return
        self._send("header", self._header_html())
        if self._step_started:  # the running steps' elapsed time: table and node badges
            self._send("table", self._table())
            if self.graph is not None:
                self._send("style", self._style())
        self._schedule_tick()

    def _elapsed(self) -> str:
        if self.snap.elapsed_s is not None:
            return f"{self.snap.elapsed_s:.1f}s"
        start = self._run_started if self._run_started is not None else self.created_at
        return f"{self.clock() - start:.1f}s"

    def flush(self) -> None:
        """Send what changed since the last flush (called by the timer). A finished run's
        outputs are the final picture's (``settle``): nothing is sent then."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._dirty or not self.built or self.finished:
            return
        self._dirty = False
        self._send("header", self._header_html())
        if self.graph is not None:
            self._send("style", self._style())
            # The counters are text in the picture: it is sent again, at most once a second.
            if self._counts_dirty and (self.snap.status != "running"
                                       or self.clock() - self._counts_sent >= 1.0):
                self._show_graph()
        self._send("table", self._table())
        if self._following() and self._last_logged is not None:
            self._selected = self._last_logged
        if self._selected in self._log_dirty or self._selected != self._log_shown:
            self._send("log", self._log_html())
        self._log_dirty.clear()

    def _following(self) -> bool:
        """Whether the log panel moves to the step printing now."""
        return not self._picked and not self._failed_shown \
            and self._last_logged != self._selected

    def _status_words(self) -> str:
        """The run's state; a warning mark when failures were passed over (continueOnError)."""
        state = self.state
        if not state.n_continued and not state.reason:
            return self.snap.status
        words = run_words(self.snap.status, state.n_continued, state.reason)
        return f"⚠ {words}" if state.n_continued else words

    def select(self, step: str | None) -> None:
        """Show ``step``'s log from now on, whoever prints (``handle.view.select(name)``)."""
        self._picked = True
        self._select(step)

    def _select(self, step: str | None) -> None:
        """Show ``step``'s log (the step printing, or the first failure)."""
        self._selected = step
        if self.built and not self.finished:
            self._send("log", self._log_html())

    def log_text(self) -> str:
        """The log panel's text: never empty; a failed step without output shows why, and
        before any step printed the panel says so."""
        name = self._selected
        lines = self._log_lines.get(name, ()) if name else ()
        text = "\n".join(list(lines)[-LOG_SHOWN:])
        step = self.state.steps.get(name) if name else None
        if not text:
            reason = self.snap.reasons.get(name) if name else None
            text = (f"{name}: {reason_label(reason)}" if reason
                    else "" if step is not None and step.outputs
                    else f"{name}: no output yet" if name else "no step has printed yet")
        if step is not None and step.outputs:
            listed = "\n".join(f"  {key} = {value}" for key, value in step.outputs.items())
            text = f"{text}\n\noutputs:\n{listed}" if text else f"outputs:\n{listed}"
        return text

    def _log_html(self) -> str:
        self._log_shown = self._selected
        name = self._selected
        title = f"log of <b>{html.escape(name)}</b>" if name else "log"
        return (f'<div class="chronum-log" data-step="{html.escape(name or "")}">'
                f'<div class="chronum-log-title" style="font-size:11px">{title}</div>'
                f'<pre class="chronum-log-text" style="max-height:240px;overflow:auto;'
                f'margin:0">{html.escape(self.log_text())}</pre></div>')

    # -- control --------------------------------------------------------------------------

    def attach(self, task: asyncio.Future[Any]) -> None:
        """The task the Cancel button cancels (the run, not the cell around it)."""
        self.task = task

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.cancel_requested = True
            self.task.cancel()

    def finish(self, status: str | None = None) -> None:
        """The run is over: the view keeps its last state, for the final picture."""
        if status is not None:
            self.snap.status = status
        if self.snap.elapsed_s is None and self._run_started is not None:
            self.snap.elapsed_s = self.clock() - self._run_started
        if status == "cancelled":
            for name in self.flow.step_names:
                if self.snap.states.get(name, "pending") in ("pending", "running", "retrying"):
                    started = self.state.steps[name].attempts > 0
                    self.snap.states[name] = "cancelled" if started else "skipped"
        self._step_started.clear()  # no clocks on a finished run
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._dirty = False
        self.finished = True
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None


def on_comm_open(comm: Any, msg: dict[str, Any]) -> None:
    """The Cancel button's comm (target ``chronum``): ``query`` is answered with whether the
    run is live (a button drawn for a dead run, in a reopened notebook, stays hidden) and,
    for a run this kernel saw end, its final picture; ``cancel`` cancels it as
    ``handle.cancel()`` does."""
    data = msg.get("content", {}).get("data", {}) or {}

    def answer(data: dict[str, Any]) -> None:
        view = _LIVE.get(str(data.get("run_id", "")))
        if data.get("action") == "cancel" and view is not None and view.live:
            view.cancel()
        reply = {"run_id": data.get("run_id"), "live": bool(view is not None and view.live)}
        if view is not None and view.finished and view.built:
            # A page opened again after the run ended (it was closed, or reloaded from the
            # file saved mid-run): the live outputs it shows are replaced by the final picture.
            reply["final"] = view.static_bundle()
        comm.send(reply)

    comm.on_msg(lambda message: answer({**data, **(message["content"]["data"] or {})}))
    answer(data)
