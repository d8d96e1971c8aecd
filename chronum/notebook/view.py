"""The live view of a run: an ipywidgets box fed by the event bus, at a few updates a second.

Events only change Python state and set a dirty flag; a timer (``interval``, 0.25 s) turns the
state into widget updates, and only values that changed are sent. So a 1,000-step flow costs a
handful of messages a second, not one per event. The graph is laid out once (``svg.layout``,
an asyncio subprocess) and recoloured by swapping its small ``<style>``.

The widgets may be built later than the view (``build=False``, then ``build()``): the view
keeps the run's state from its first event, so widgets built a quarter of a second into a run
show everything that happened before.

Logs: the lines of each step are kept (a bounded tail) and the selected step's tail is written
into an ``Output`` widget by assigning its ``outputs`` trait, which sends only that key (a full
``send_state`` of an ``Output`` crashes nbclient); nothing is ever ``print``-ed from a task.
"""

from __future__ import annotations

import asyncio
import html
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]
from ipywidgets.widgets.widget_string import (  # type: ignore[import-untyped]
    HTMLStyle,
    LabelStyle,
)

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
    legend_html,
    plain_text,
    reason_label,
    static_html,
    table_html,
)
from ..render.svg import prefix_for, remember_graph
from ..state import FINISHED, RunState, StepState, run_words

__all__ = ["LiveView"]

#: Rows of the live table before it switches to counts plus the steps worth looking at.
TABLE_LIMIT = 40
LOG_TAIL = 200


def _classes(*names: str) -> dict[str, Any]:
    return {"_dom_classes": names}


class LiveView:
    """One run's widget: header, progress, graph, step table, logs and a Cancel button."""

    def __init__(self, flow: Flow, run_id: str, *, interval: float = 0.25,
                 clock: Callable[[], float] = time.monotonic, build: bool = True) -> None:
        self.flow = flow
        self.run_id = run_id
        self.interval = interval
        self.clock = clock
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
        #: The step whose log is shown (the dropdown's value once built).
        self._selected: str | None = None
        #: The log panel follows the step printing, then the first that fails, until the
        #: user picks one in the dropdown.
        self._picked = False
        self._failed_shown = False
        self._last_logged: str | None = None
        #: clock() at each running step's current attempt start: its elapsed time.
        self._step_started: dict[str, float] = {}
        self._syncing_options = False
        #: What the dropdown's steps were made from at its last update (see _log_options_key).
        self._log_options_seen: tuple[int, int, str | None] = (0, 0, None)
        #: Fan-out steps' instances: each instance's group (``snap.groups`` by step).
        self._group_of: dict[str, Group] = {}
        #: The graph's counters changed since the picture was last sent, and when that was.
        self._counts_dirty = False
        self._counts_sent = 0.0
        self.widget: widgets.VBox | None = None
        #: Sends the final picture again (set by the cell): a step's thread that outlived its
        #: cancel ended after the run did.
        self.refresh: Callable[[], None] | None = None
        #: HTML the final picture ends with (the timeline, with %config ChronumMagics.timeline).
        self.footer = ""
        if build:
            self.build()

    @property
    def built(self) -> bool:
        return self.widget is not None

    # -- widgets --------------------------------------------------------------------------

    def build(self) -> None:
        """Make the widgets, showing the state so far; the graph too if it is laid out."""
        if self.widget is not None:
            return
        self._build()
        if self.graph is not None:
            self._show_graph()
        if self._run_started is not None and not self.finished:
            self._schedule_tick()
        self._dirty = True
        self.flush()

    def _build(self) -> None:
        n = len(self.flow.steps)
        # One Layout for every widget and one style per widget type, shared: each widget would
        # otherwise open two more comms of its own (a third of the view's start-up cost), and
        # none of them is ever restyled on its own.
        layout = widgets.Layout()
        html_style, label_style = HTMLStyle(), LabelStyle()

        def html(value: str, name: str) -> widgets.HTML:
            return widgets.HTML(value, layout=layout, style=html_style, **_classes(name))

        def label(value: str, name: str) -> widgets.Label:
            return widgets.Label(value, layout=layout, style=label_style, **_classes(name))

        # The id is where a second display of a background run links to (summary_bundle).
        self.title = html(f'<b id="chronum-run-{self.run_id}">{self.flow.name}</b>',
                          "chronum-title")
        self.run_label = label(self.run_id, "chronum-run-id")
        self.state_label = label("running", "chronum-state")
        self.elapsed_label = label("0.0s", "chronum-elapsed")
        self.progress = widgets.IntProgress(value=0, min=0, max=max(n, 1), layout=layout,
                                            **_classes("chronum-progress"))
        self.cancel_button = widgets.Button(description="Cancel", button_style="warning",
                                            icon="stop", layout=layout,
                                            **_classes("chronum-cancel"))
        self.cancel_button.on_click(lambda _button: self.cancel())
        if threading.current_thread() is not threading.main_thread():
            # A blocking ``flow.run()`` in a cell: its run has a loop of its own while the
            # kernel's waits, so no click reaches it until the run ends.
            self.cancel_button.disabled = True
            self.cancel_button.tooltip = ("flow.run() blocks the kernel: stop it with the "
                                          "kernel's Stop button (or use await flow.arun())")
        self.graph_box = html("", "chronum-graph")
        self.style_box = html("", "chronum-style")
        self.table = html(self._table(), "chronum-table-box")
        # Only the steps that printed something (and the one shown): a thousand-step flow
        # would otherwise send, and offer, a thousand names with nothing behind most of them.
        self.log_select = widgets.Dropdown(options=self._log_options(), value=self._selected,
                                           description="log", layout=layout,
                                           **_classes("chronum-log-select"))
        self._log_options_seen = self._log_options_key()
        self.log_select.observe(self._on_select, names="value")
        self.log_output = widgets.Output(layout=layout, **_classes("chronum-log"))
        self._show_log()
        header = widgets.HBox([self.title, self.run_label, self.state_label, self.elapsed_label,
                               self.progress, self.cancel_button], layout=layout,
                              **_classes("chronum-header"))
        self.widget = widgets.VBox(
            [header, self.style_box, self.graph_box, self.table, self.log_select,
             self.log_output], layout=layout, **_classes("chronum-view"))

    def bundle(self) -> dict[str, Any]:
        """The live mimebundle: the widget view plus the fixed text summary (builds the
        widgets if they are not built yet)."""
        self.build()
        assert self.widget is not None
        return {
            "application/vnd.jupyter.widget-view+json": {
                "version_major": 2, "version_minor": 0, "model_id": self.widget.model_id},
            "text/plain": plain_text(self.flow.name, None, len(self.flow.steps)),
        }

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
        """The final picture left in the notebook when the run ends (widget state is not saved)."""
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
        if self.graph is not None and self.built:
            self._show_graph()

    def _show_graph(self) -> None:
        assert self.graph is not None
        self.style_box.value = self._style()
        picture = svg.counted(self.graph, self.snap.groups) if self.snap.groups \
            else self.graph.svg
        self.graph_box.value = (f'{legend_html()}<div style="overflow:auto;'
                                f'max-height:{svg.GRAPH_MAX_HEIGHT}px">{picture}</div>')
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
        return table_html(rows, limit=TABLE_LIMIT)

    # -- events ---------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        """Bus subscriber: update state now, widgets at the next tick."""
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
        self._set(self.elapsed_label, "value", self._elapsed())
        if self._step_started:  # the running steps' elapsed time: table and node badges
            self._set(self.table, "value", self._table())
            if self.graph is not None:
                self._set(self.style_box, "value", self._style())
        self._schedule_tick()

    def _elapsed(self) -> str:
        if self.snap.elapsed_s is not None:
            return f"{self.snap.elapsed_s:.1f}s"
        start = self._run_started if self._run_started is not None else self.created_at
        return f"{self.clock() - start:.1f}s"

    @staticmethod
    def _set(widget: widgets.Widget, name: str, value: Any) -> None:
        if getattr(widget, name) != value:  # unchanged values would still cost a message
            setattr(widget, name, value)

    def flush(self) -> None:
        """Send what changed since the last flush (called by the timer, and at the end)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._dirty or not self.built:
            return
        self._dirty = False
        snap = self.snap
        # From the picture's states: ``finish`` marks steps a cancelled task never reported.
        done = sum(1 for s in snap.states.values() if s in FINISHED)
        self._set(self.progress, "value", done)
        self._set(self.state_label, "value", self._status_words())
        self._set(self.elapsed_label, "value", self._elapsed())
        if self.graph is not None:
            self._set(self.style_box, "value", self._style())
            # The counters are text in the picture: it is sent again, at most once a second.
            if self._counts_dirty and (self.finished or self.snap.status != "running"
                                       or self.clock() - self._counts_sent >= 1.0):
                self._show_graph()
        self._set(self.table, "value", self._table())
        if self._following() and self._last_logged is not None:
            self._select(self._last_logged)
        if self._log_dirty:
            self._sync_log_options()
        if self._selected in self._log_dirty:
            self._show_log()
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

    def _select(self, step: str | None) -> None:
        """Show ``step``'s log (a click in the dropdown, the step printing, or the first
        failure)."""
        self._selected = step
        if self.built:
            self._sync_log_options()
            self._syncing_options = True  # not a click: the panel keeps following
            try:
                self._set(self.log_select, "value", step)
            finally:
                self._syncing_options = False
            self._show_log()

    def _on_select(self, change: dict[str, Any]) -> None:
        if not self._syncing_options:  # a click, not the options being brought up to date
            self._picked = True
            self._select(change["new"])

    def _log_options(self) -> list[str]:
        """The dropdown's steps, in file order: those with log lines, and the one shown."""
        logged, shown = self._log_lines, self._selected
        if not logged and shown is None:
            return []
        names = [name for name in self.flow.step_names if name in logged or name == shown]
        if self._group_of:  # instances: the one shown, and those that failed with a log
            for group in self.snap.groups.values():
                names.extend(n for n, s in group.states.items()
                             if n == shown or (s == "failed" and n in logged))
        return names

    def _log_options_key(self) -> tuple[int, int, str | None]:
        """Changes whenever ``_log_options`` may: log lines only ever add steps."""
        shown = self._selected
        failed = sum(g.failed for g in self.snap.groups.values())
        return len(self._log_lines), failed, None if shown in self._log_lines else shown

    def _sync_log_options(self) -> None:
        """New steps with logs join the dropdown; the step shown stays selected."""
        key = self._log_options_key()
        if key == self._log_options_seen:
            return
        self._log_options_seen = key
        options = tuple(self._log_options())
        if options == self.log_select.options:
            return
        self._syncing_options = True
        try:
            with self.log_select.hold_sync():
                self.log_select.options = options
                self.log_select.value = self._selected
        finally:
            self._syncing_options = False

    def _show_log(self) -> None:
        """The selected step's log; never an empty panel: a failed step without output
        shows why, and before any step printed the panel says so."""
        name = self._selected
        text = "\n".join(self._log_lines.get(name, ())) if name else ""
        step = self.state.steps.get(name) if name else None
        if not text:
            reason = self.snap.reasons.get(name) if name else None
            text = (f"{name}: {reason_label(reason)}" if reason
                    else "" if step is not None and step.outputs
                    else f"{name}: no output yet" if name else "no step has printed yet")
        if step is not None and step.outputs:
            listed = "\n".join(f"  {key} = {value}" for key, value in step.outputs.items())
            text = f"{text}\n\noutputs:\n{listed}" if text else f"outputs:\n{listed}"
        outputs = ({"output_type": "stream", "name": "stdout", "text": text + "\n"},) if text \
            else ()
        self._set(self.log_output, "outputs", outputs)

    # -- control --------------------------------------------------------------------------

    def attach(self, task: asyncio.Future[Any]) -> None:
        """The task the Cancel button cancels (the run, not the cell around it)."""
        self.task = task

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.cancel_requested = True
            if self.built:
                self.cancel_button.disabled = True
            self.task.cancel()

    def finish(self, status: str | None = None) -> None:
        """The run is over: final flush; the view keeps its last state."""
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
        self._dirty = True
        self.flush()
        self.finished = True
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self.built:
            self.cancel_button.disabled = True
