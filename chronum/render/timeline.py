"""The picture ``chronum.show`` returns: a past run's final states and a timeline of attempts.

The timeline is a Gantt chart drawn as plain SVG (no matplotlib): one row per step, one bar per
attempt coloured by its outcome, and the backoff wait before a retry drawn as a hatched bar, so
retries and waits are seen rather than read. Works without IPython: the picture is an object
with ``_repr_mimebundle_``. Pure: ``chronum.show`` reads the run and finds its flow first.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..model import Flow
from .dot import STATE_COLORS
from .html import Snapshot, plain_text, snapshot_from_rows, static_html
from .svg import Layout

__all__ = ["RunPicture", "run_picture", "timeline_svg"]

ROW = 22
LABEL_W = 140
PLOT_W = 560


def _ticks(span: float) -> list[float]:
    """About five round tick positions (1, 2 or 5 times a power of ten) over ``span`` s."""
    if span <= 0:
        return [0.0]
    base = 10.0 ** math.floor(math.log10(span / 5))
    step = next(m * base for m in (1, 2, 5, 10) if m * base >= span / 5)
    return [i * step for i in range(int(span / step + 1e-9) + 1)]


def timeline_svg(attempts: Sequence[Mapping[str, Any]], steps: Sequence[str]) -> str:
    """The Gantt chart of ``attempts`` rows (``step, attempt, status, started_at,
    finished_at, delay_s``), one row per name in ``steps``."""
    rows = [a for a in attempts if a.get("started_at") is not None]
    if not rows:
        return '<svg class="chronum-timeline" width="0" height="0"></svg>'
    t0 = min(float(a["started_at"]) - float(a.get("delay_s") or 0) for a in rows)
    t1 = max(float(a.get("finished_at") or a["started_at"]) for a in rows)
    span = max(t1 - t0, 1e-3)
    scale = PLOT_W / span
    y_of = {name: i for i, name in enumerate(steps)}
    height = ROW * len(steps) + 30
    parts = [
        f'<svg class="chronum-timeline" xmlns="http://www.w3.org/2000/svg" '
        f'width="{LABEL_W + PLOT_W + 20}" height="{height}" font-family="Helvetica,sans-serif" '
        f'font-size="11">',
        '<defs><pattern id="chronum-wait" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="3" height="6" fill="#bbbbbb"/></pattern>'
        "</defs>",
    ]
    for name, i in y_of.items():
        parts.append(f'<text x="{LABEL_W - 6}" y="{i * ROW + 15}" text-anchor="end">'
                     f"{html.escape(name)}</text>")
    for a in rows:
        if a["step"] not in y_of:
            continue
        i = y_of[a["step"]]
        start = float(a["started_at"])
        end = float(a.get("finished_at") or start)
        delay = float(a.get("delay_s") or 0)
        y = i * ROW + 3
        if delay > 0:
            parts.append(
                f'<rect class="chronum-wait" data-step="{html.escape(a["step"])}" '
                f'x="{LABEL_W + (start - delay - t0) * scale:.1f}" y="{y + 5}" '
                f'width="{max(delay * scale, 1):.1f}" height="{ROW - 16}" '
                f'fill="url(#chronum-wait)"><title>wait {delay:.2f}s</title></rect>')
        status = str(a["status"])
        parts.append(
            f'<rect class="chronum-attempt state-{status}" data-step="{html.escape(a["step"])}" '
            f'data-attempt="{a["attempt"]}" data-state="{status}" '
            f'x="{LABEL_W + (start - t0) * scale:.1f}" y="{y}" '
            f'width="{max((end - start) * scale, 2):.1f}" height="{ROW - 6}" '
            f'fill="{STATE_COLORS.get(status, "#dddddd")}" stroke="#555555">'
            f"<title>{html.escape(a['step'])} attempt {a['attempt']}: {status}, "
            f"{end - start:.2f}s</title></rect>")
    axis_y = ROW * len(steps) + 4
    parts.append(f'<line x1="{LABEL_W}" y1="{axis_y}" x2="{LABEL_W + PLOT_W}" y2="{axis_y}" '
                 'stroke="#555555"/>')
    for t in _ticks(span):
        x = LABEL_W + t * scale
        parts.append(f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}" '
                     f'stroke="#555555"/><text x="{x:.1f}" y="{axis_y + 16}" '
                     f'text-anchor="middle">{t:g}s</text>')
    parts.append("</svg>")
    return "".join(parts)


@dataclass
class RunPicture:
    """What ``show`` returns: displays as the run's final picture and its timeline."""

    snapshot: Snapshot
    html_text: str

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        snap = self.snapshot
        return {"text/plain": plain_text(snap.flow.name, snap.status, len(snap.flow.steps)),
                "text/html": self.html_text}

    def _repr_html_(self) -> str:
        return self.html_text


def run_picture(flow: Flow, info: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                attempts: Sequence[Mapping[str, Any]] | None,
                graph: Layout | None) -> RunPicture:
    """A past run redrawn: its graph with final states, its step table and, given the
    ``attempts`` rows, a timeline. ``info`` is the run's record (``run_id, status,
    duration_s``), ``rows`` its step rows, as the store gives them."""
    snap = snapshot_from_rows(flow, info["run_id"], info["status"], info.get("duration_s"),
                              rows)
    text = static_html(snap, graph)
    if attempts is not None:
        text += ('<div class="chronum-timeline-box">'
                 f"{timeline_svg(attempts, flow.step_names)}</div>")
    return RunPicture(snap, text)
