"""Static pictures of a run: the HTML the live view leaves behind, and ``Run``'s rich display.

The same DOM classes are used here and in the live widget view (``chronum-view``,
``chronum-state``, ``chronum-graph``, ``chronum-table``; nodes and rows carry ``data-step`` and
``data-state``), so a browser test reads a finished static picture and a live view alike.
``text/plain`` never holds a run id or a time: nbval compares it across runs.

Imports only the standard library and chronum: ``Run._repr_mimebundle_`` works in plain Python.
"""

from __future__ import annotations

import base64
import html
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..render import STATE_COLORS
from . import svg

if TYPE_CHECKING:
    from ..api import Run
    from ..model import Flow

__all__ = ["Snapshot", "plain_text", "run_mimebundle", "snapshot_of", "static_html", "table_html"]

#: Laid-out graphs of recent runs, so a finished run is redrawn without running ``dot`` again.
_GRAPHS: OrderedDict[str, svg.Graph | None] = OrderedDict()
_GRAPHS_LIMIT = 32
#: Log tails shown in a static picture: per step, and in all.
LOG_LINES = 40
LOG_BUDGET = 64_000
#: Rows of a static step table before it shows counts plus the rows worth looking at.
STATIC_ROWS = 100


def remember_graph(run_id: str, graph: svg.Graph | None) -> None:
    _GRAPHS[run_id] = graph
    while len(_GRAPHS) > _GRAPHS_LIMIT:
        _GRAPHS.popitem(last=False)


def prefix_for(run_id: str) -> str:
    """Element ids of a run's picture start with this: unique per run, valid in CSS."""
    return f"chronum_{run_id}"


@dataclass
class Snapshot:
    """What a picture of a run shows; filled from events (live) or from the store (later)."""

    flow: Flow
    run_id: str
    status: str = "running"
    states: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    elapsed_s: float | None = None

    def rows(self) -> list[dict[str, Any]]:
        return [{"step": name, "status": self.states.get(name, "pending"),
                 "attempts": self.attempts.get(name, 0),
                 "duration_s": self.durations.get(name),
                 "exit_code": self.exit_codes.get(name)} for name in self.flow.step_names]


def plain_text(flow_name: str, status: str | None, n_steps: int) -> str:
    """The fixed ``text/plain`` of a view: no id, no time, so saved notebooks compare equal."""
    state = f": {status}" if status else ""
    return f"<chronum run {flow_name}{state} ({n_steps} steps)>"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}s"
    return html.escape(str(value))


def table_html(rows: Sequence[Mapping[str, Any]], *, limit: int | None = None) -> str:
    """The step table; over ``limit`` rows, state counts plus the rows worth looking at."""
    head = "<tr><th>step</th><th>state</th><th>attempts</th><th>duration</th><th>exit</th></tr>"
    shown = list(rows)
    summary = ""
    if limit is not None and len(shown) > limit:
        counts: dict[str, int] = {}
        for row in shown:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        summary = ('<div class="chronum-counts">' + ", ".join(
            f"{n} {state}" for state, n in sorted(counts.items())) + "</div>")
        busy = [r for r in shown if r["status"] not in ("pending", "succeeded", "cached")]
        shown = busy[:limit]
    body = "".join(
        f'<tr data-step="{html.escape(r["step"])}" data-state="{r["status"]}" '
        f'class="state-{r["status"]}" style="background:{STATE_COLORS.get(r["status"], "")}">'
        f'<td>{html.escape(r["step"])}</td><td class="chronum-step-state">{r["status"]}</td>'
        f'<td>{_cell(r["attempts"])}</td><td>{_cell(r["duration_s"])}</td>'
        f'<td>{_cell(r["exit_code"])}</td></tr>'
        for r in shown)
    return (f'{summary}<table class="chronum-table" style="border-collapse:collapse">'
            f"{head}{body}</table>")


def _logs_html(logs: Mapping[str, str], order: Sequence[str]) -> str:
    """Step logs in file order (not in the order their first lines happened to arrive)."""
    parts, budget = [], LOG_BUDGET
    for name in order:
        text = logs.get(name, "")
        if not text or budget <= 0:
            continue
        tail = "\n".join(text.splitlines()[-LOG_LINES:])[-budget:]
        budget -= len(tail)
        parts.append(f'<details class="chronum-log" data-step="{html.escape(name)}">'
                     f"<summary>{html.escape(name)}</summary><pre>{html.escape(tail)}</pre>"
                     "</details>")
    return "".join(parts)


def static_html(snap: Snapshot, graph: svg.Graph | None, *, title: str = "run") -> str:
    """A self-contained picture: header, graph (states baked in) or table, step logs."""
    elapsed = f"{snap.elapsed_s:.1f}s" if snap.elapsed_s is not None else ""
    done = sum(1 for s in snap.states.values() if s not in ("pending", "running", "retrying"))
    picture = ""
    if graph is not None:
        # An image, not inline SVG: a notebook opened from disk is untrusted, and JupyterLab's
        # sanitizer strips inline <svg> (and data-* attributes) but keeps a data: image.
        baked = svg.bake(graph, snap.states, snap.attempts).encode()
        picture = (f'<div class="chronum-graph" style="overflow:auto;max-height:480px">'
                   f'<img class="chronum-graph-img" alt="graph of {html.escape(snap.flow.name)}"'
                   f' src="data:image/svg+xml;base64,{base64.b64encode(baked).decode()}"/>'
                   "</div>")
    return (
        f'<div class="chronum-view chronum-static" data-run-id="{snap.run_id}">'
        f'<div class="chronum-header"><b class="chronum-title">{html.escape(snap.flow.name)}</b>'
        f' {title} <code class="chronum-run-id">{snap.run_id}</code> '
        f'<span class="chronum-state">{snap.status}</span> '
        f'<span class="chronum-elapsed">{elapsed}</span> '
        f'<span class="chronum-progress">{done}/{len(snap.flow.steps)}</span></div>'
        f"{picture}{table_html(snap.rows(), limit=STATIC_ROWS)}"
        f"{_logs_html(snap.logs, snap.flow.step_names)}</div>"
    )


def snapshot_of(run: Run) -> Snapshot:
    """A finished run's picture data, read back from the store."""
    from ..store import Store

    snap = Snapshot(run.flow, run.run_id, run.status, elapsed_s=run.duration_s)
    try:
        with Store(run.db) as store:
            rows = store.step_rows(run.run_id)
    except Exception:  # a display must not raise: show what the Run object itself knows
        rows = []
    for row in rows:
        name = row["step"]
        snap.states[name] = row["status"]
        snap.attempts[name] = row["attempts"] or 0
        snap.durations[name] = row["duration_s"]
        snap.exit_codes[name] = row["exit_code"]
        snap.logs[name] = row.get("log_tail") or ""
    return snap


def graph_for(run_id: str, flow: Flow) -> svg.Graph | None:
    if run_id not in _GRAPHS:
        remember_graph(run_id, svg.layout_sync(flow, prefix_for(run_id)))
    return _GRAPHS[run_id]


def static_bundle(run: Run) -> dict[str, Any]:
    snap = snapshot_of(run)
    return {
        "text/plain": plain_text(run.flow.name, run.status, len(run.flow.steps)),
        "text/html": static_html(snap, graph_for(run.run_id, run.flow)),
    }


def run_mimebundle(run: Run, include: Any = None, exclude: Any = None) -> dict[str, Any]:
    """``Run._repr_mimebundle_``: the final picture as HTML, and the fixed text summary."""
    bundle = static_bundle(run)
    if include:
        bundle = {k: v for k, v in bundle.items() if k in include}
    if exclude:
        bundle = {k: v for k, v in bundle.items() if k not in exclude}
    return bundle
