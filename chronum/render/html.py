"""Static pictures of a run: the HTML a finished run leaves in a notebook, and its mimebundle.

The same DOM classes are used here and in the notebook's live view (``chronum-view``,
``chronum-state``, ``chronum-graph``, ``chronum-table``; nodes and rows carry ``data-step`` and
``data-state``), so a browser test reads a finished static picture and a live view alike.
``text/plain`` never holds a run id or a time: nbval compares it across runs.

Pure: the caller passes the run's step rows (read from the store, or kept from events), so a
picture is drawn the same way by the notebook, ``Run``'s display and ``chronum.show``.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..model import Flow
from .dot import STATE_COLORS
from .groups import Group, groups_from_rows
from .svg import GRAPH_MAX_HEIGHT, Layout, bake, timeout_label

__all__ = ["Snapshot", "failed_steps", "is_timeout", "legend_html", "logs_html", "plain_text",
           "reason_label", "run_bundle", "snapshot_from_rows", "static_html", "table_html"]

#: Log tails shown in a static picture: per step, and in all.
LOG_LINES = 40
LOG_BUDGET = 64_000
#: Rows of a static step table before it shows counts plus the rows worth looking at.
STATIC_ROWS = 100


@dataclass
class Snapshot:
    """What a picture of a run shows; filled from events (live) or from step rows (later)."""

    flow: Flow
    run_id: str
    status: str = "running"
    states: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    elapsed_s: float | None = None
    #: Why a step ran, was reused, failed, was cancelled or skipped (the state fold's
    #: ``reason``).
    reasons: dict[str, str] = field(default_factory=dict)
    #: Fan-out steps' instances, by step (``render.groups``); never in the maps above.
    groups: dict[str, Group] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        groups = self.groups
        return [{"step": name, "status": self.states.get(name, "pending"),
                 "attempts": self.attempts.get(name, 0),
                 "duration_s": self.durations.get(name),
                 "exit_code": self.exit_codes.get(name),
                 "reason": self.reasons.get(name),
                 **({"group": groups[name]} if name in groups else {})}
                for name in self.flow.step_names]


    def timed_out(self) -> set[str]:
        """The steps whose last attempt ran past its timeout."""
        return {name for name, reason in self.reasons.items() if is_timeout(reason)}


_TIMEOUT = re.compile(r"^timed out after (\d+(?:\.\d+)?\s?[smhd])\b")


def is_timeout(reason: str | None) -> bool:
    return bool(reason) and _TIMEOUT.match(reason or "") is not None


def reason_label(reason: str | None) -> str:
    """A reason as pictures show it: "timed out after 3 s", "... 10 min" (the engine writes
    "3s", "10m")."""
    if not reason:
        return ""
    return _TIMEOUT.sub(lambda m: timeout_label(m.group(1)), reason, count=1)


def snapshot_from_rows(flow: Flow, run_id: str, status: str, elapsed_s: float | None,
                       rows: Iterable[Mapping[str, Any]]) -> Snapshot:
    """A run's picture data from its step rows (``step, status, attempts, duration_s,
    exit_code, log_tail``, as ``Store.step_rows`` gives them)."""
    snap = Snapshot(flow, run_id, status, elapsed_s=elapsed_s)
    rows = list(rows)
    snap.groups = groups_from_rows(rows)
    for row in rows:
        if row.get("item") is not None:
            continue  # an instance: counted in its group
        name = row["step"]
        snap.states[name] = row["status"]
        snap.attempts[name] = row["attempts"] or 0
        snap.durations[name] = row["duration_s"]
        snap.exit_codes[name] = row["exit_code"]
        snap.logs[name] = row.get("log_tail") or ""
        if row.get("reason"):
            snap.reasons[name] = row["reason"]
    return snap


def legend_html() -> str:
    """What each colour means, in the order a run goes through them."""
    items = "".join(
        f'<span class="chronum-legend-item" data-state="{state}" style="margin-right:10px">'
        f'<span style="display:inline-block;width:10px;height:10px;background:{color};'
        f'border:1px solid #888;vertical-align:middle"></span> {state.replace("_", " ")}'
        "</span>" for state, color in STATE_COLORS.items())
    return f'<div class="chronum-legend" style="font-size:11px;margin:2px 0">{items}</div>'


def plain_text(flow_name: str, status: str | None, n_steps: int) -> str:
    """The fixed ``text/plain`` of a view: no id, no time, so saved notebooks compare equal."""
    state = f": {status}" if status else ""
    return f"<chronum run {flow_name}{state} ({n_steps} step{'' if n_steps == 1 else 's'})>"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}s"
    return html.escape(str(value))


#: States whose name in the table is longer than their key.
STATE_LABELS = {"background": "cancelled — still running in the background"}


def table_html(rows: Sequence[Mapping[str, Any]], *, limit: int | None = None) -> str:
    """The step table; over ``limit`` rows, state counts plus the rows worth looking at."""
    head = ("<tr><th>step</th><th>state</th><th>attempts</th><th>duration</th><th>exit</th>"
            "<th>why</th></tr>")
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
        f'<td>{html.escape(r["step"])}</td><td class="chronum-step-state">'
        f'{STATE_LABELS.get(r["status"], r["status"])}</td>'
        f'<td>{_cell(r["attempts"])}</td><td>{_cell(r["duration_s"])}</td>'
        f'<td>{_cell(r["exit_code"])}</td>'
        f'<td class="chronum-reason">{_why(r)}</td></tr>' + _instances(r.get("group"))
        for r in shown)
    return (f'{summary}<table class="chronum-table" style="border-collapse:collapse">'
            f"{head}{body}</table>")


def _why(row: Mapping[str, Any]) -> str:
    """The table's "why" cell: why a step ran or was reused (caching), why it did not succeed,
    or what a running step has been doing (``elapsed_s``, the live view's)."""
    if row.get("elapsed_s") is not None and row["status"] in ("running", "retrying"):
        return f"running for {row['elapsed_s']:.0f} s"
    if row["status"] in ("pending", "running"):
        return ""
    return html.escape(reason_label(row.get("reason")))


def _instances(group: Group | None) -> str:
    """A fan-out step's instances, folded under its row: the counts, and when unfolded the
    instances worth a look (open by itself when one failed)."""
    if group is None or not group.total:
        return ""
    names, rest = group.rows()
    states = group.states
    rows = "".join(
        f'<tr data-step="{html.escape(n)}" data-state="{states[n]}" class="state-{states[n]}" '
        f'style="background:{STATE_COLORS.get(states[n], "")}"><td>{html.escape(n)}</td>'
        f'<td class="chronum-step-state">{states[n]}</td></tr>' for n in names)
    more = f'<div class="chronum-more">… and {rest:,} more</div>' if rest else ""
    opened = " open" if group.failed else ""
    return (f'<tr class="chronum-instances" data-group="{html.escape(group.name)}">'
            f'<td colspan="6"><details{opened}><summary class="chronum-group-count">'
            f"{html.escape(group.summary())}</summary>"
            f'<table class="chronum-instance-table">{rows}</table>{more}</details></td></tr>')


def logs_html(logs: Mapping[str, str], order: Sequence[str],
              failed: Mapping[str, str] | None = None) -> str:
    """The tail of each step's log, in file order (not the order their lines arrived in).

    ``failed`` (step -> reason) are shown open, reason first, even without a log: why a run
    failed is read without a click."""
    parts, budget = [], LOG_BUDGET
    failed = failed or {}
    for name in order:
        text = logs.get(name, "")
        reason = failed.get(name)
        if (not text and reason is None) or budget <= 0:
            continue
        tail = "\n".join(text.splitlines()[-LOG_LINES:])[-budget:]
        budget -= len(tail)
        opened = " open" if reason is not None else ""
        why = (f' <span class="chronum-reason">{html.escape(reason_label(reason))}</span>'
               if reason else "")
        pre = f"<pre>{html.escape(tail)}</pre>" if tail else ""
        parts.append(f'<details class="chronum-log" data-step="{html.escape(name)}"{opened}>'
                     f"<summary>{html.escape(name)}{why}</summary>{pre}</details>")
    return "".join(parts)


def failed_steps(snap: Snapshot) -> dict[str, str]:
    """The steps that failed (and why), for the picture to show open."""
    return {name: snap.reasons.get(name, "") for name in snap.flow.step_names
            if snap.states.get(name) == "failed"}


def header_html(snap: Snapshot, state: str, elapsed: str, done: int, *, title: str = "run",
                live: bool = False) -> str:
    """The header line: flow, run id, state, elapsed time and steps done (the live view's
    has a progress bar and the anchor a run's summary links to)."""
    n = len(snap.flow.steps)
    name = html.escape(snap.flow.name)
    if live:
        return (f'<div class="chronum-header"><b class="chronum-title" '
                f'id="chronum-run-{snap.run_id}">{name}</b> '
                f'<code class="chronum-run-id">{snap.run_id}</code> '
                f'<span class="chronum-state">{html.escape(state)}</span> '
                f'<span class="chronum-elapsed">{elapsed}</span> '
                f'<progress class="chronum-progress" value="{done}" max="{max(n, 1)}">'
                f"</progress> <span class=\"chronum-done\">{done}/{n}</span></div>")
    return (f'<div class="chronum-header"><b class="chronum-title">{name}</b>'
            f' {title} <code class="chronum-run-id">{snap.run_id}</code> '
            f'<span class="chronum-state">{html.escape(state)}</span> '
            f'<span class="chronum-elapsed">{elapsed}</span> '
            f'<span class="chronum-progress">{done}/{n}</span></div>')


def static_html(snap: Snapshot, graph: Layout | None, *, title: str = "run") -> str:
    """A self-contained picture: header, graph (states baked in) or table, step logs."""
    elapsed = f"{snap.elapsed_s:.1f}s" if snap.elapsed_s is not None else ""
    done = sum(1 for s in snap.states.values() if s not in ("pending", "running", "retrying"))
    picture = ""
    if graph is not None:
        # An image, not inline SVG: a notebook opened from disk is untrusted, and JupyterLab's
        # sanitizer strips inline <svg> (and data-* attributes) but keeps a data: image.
        baked = bake(graph, snap.states, snap.attempts, snap.timed_out(), snap.groups).encode()
        picture = (f'<div class="chronum-graph" style="overflow:auto;'
                   f'max-height:{GRAPH_MAX_HEIGHT}px">'
                   f'<img class="chronum-graph-img" alt="graph of {html.escape(snap.flow.name)}"'
                   ' style="max-width:100%;height:auto"'
                   f' src="data:image/svg+xml;base64,{base64.b64encode(baked).decode()}"/>'
                   "</div>")
    return (
        f'<div class="chronum-view chronum-static" data-run-id="{snap.run_id}">'
        f"{header_html(snap, snap.status, elapsed, done, title=title)}"
        f"{legend_html()}{picture}{table_html(snap.rows(), limit=STATIC_ROWS)}"
        f"{logs_html(snap.logs, snap.flow.step_names, failed_steps(snap))}</div>"
    )


def run_bundle(flow: Flow, run_id: str, status: str, elapsed_s: float | None,
               rows: Iterable[Mapping[str, Any]], graph: Layout | None, *,
               include: Collection[str] | None = None,
               exclude: Collection[str] | None = None) -> dict[str, Any]:
    """A finished run's mimebundle (``_repr_mimebundle_``): the final picture as HTML, and
    the fixed text summary; ``include``/``exclude`` as IPython passes them."""
    snap = snapshot_from_rows(flow, run_id, status, elapsed_s, rows)
    bundle = {"text/plain": plain_text(flow.name, status, len(flow.steps)),
              "text/html": static_html(snap, graph)}
    if include:
        bundle = {k: v for k, v in bundle.items() if k in include}
    if exclude:
        bundle = {k: v for k, v in bundle.items() if k not in exclude}
    return bundle
