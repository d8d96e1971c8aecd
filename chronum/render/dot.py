"""A flow as DOT: the one builder, and the ``Graph`` object ``flow.graph()`` returns.

One function writes DOT for every picture of a flow: ``chronum graph`` (optionally coloured by
step states) and the notebook's layout source (with an ``id`` per node, which the live view's
stylesheet and the baked pictures find nodes by). DOT is deterministic, nodes in file order and
edges sorted, so it is compared byte for byte. Styling is said to ``dot`` in DOT (rounded filled
boxes, fonts, ids, classes, the dashed edges into steps with ``if:``) rather than patched into
its SVG afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from ..errors import DotNotFoundError
from ..model import Flow

__all__ = ["PENDING_FILL", "STATE_COLORS", "Graph", "node_id", "quote", "to_dot"]

#: Fill colours by step state, the same in every picture (graph, table, timeline).
STATE_COLORS = {
    "pending": "#ffffff",
    "running": "#fff3b0",
    "retrying": "#ffd59e",
    "succeeded": "#b7e4c7",
    "cached": "#d8f3dc",
    "failed": "#f4a3a8",
    "upstream_failed": "#e9c1c4",
    "skipped": "#e5e5e5",
    "cancelled": "#cfcfe8",
    # cancelled or timed out, but its function's thread still runs (the notebook's view)
    "background": "#a99be0",
}
PENDING_FILL = STATE_COLORS["pending"]

#: Node defaults of every picture: dot draws the rounded boxes and writes the fonts itself.
_NODE_DEFAULTS = (f'node [shape=box, style="rounded,filled", fontname="Helvetica", '
                  f'fillcolor="{PENDING_FILL}"];')


def quote(text: str) -> str:
    """``text`` as a DOT double-quoted string (backslashes and quotes escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def node_id(prefix: str, index: int) -> str:
    """The SVG id of the ``index``-th step's node group in a picture laid out with ``prefix``."""
    return f"{prefix}_{index}"


def to_dot(flow: Flow, states: Mapping[str, str] | None = None, *,
           prefix: str | None = None) -> str:
    """DOT source of ``flow``.

    ``states`` (a step name to a state word) colours the nodes: ``fillcolor`` and a
    ``state-<word>`` class. ``prefix`` makes the notebook's layout source: each node gets the
    id ``<prefix>_<index>``, no tooltip (dot would wrap the node's shapes in a link group), and
    a taller box, with room above its name for the running time and under it for a "try N"
    badge and "timed out after N s".
    """
    lines = [f"digraph {quote(flow.name)} {{", "  rankdir=LR;", f"  {_NODE_DEFAULTS}"]
    for index, step in enumerate(flow.steps):
        if prefix is None:
            attrs = [f"label={quote(step.name)}", f"tooltip={quote(step.executor)}"]
        else:
            attrs = [f"id={quote(node_id(prefix, index))}", f"label={quote(step.name)}"]
            # Room above the name for the running time, and under it for "try N", "timed out
            # after N s" and a fan-out step's counter (one row each).
            rows = bool(step.retry.limit) + (step.timeout is not None) + step.fans_out
            attrs.append({0: "height=0.6", 1: "height=0.6", 2: "height=0.8"}.get(
                rows, "height=1.0"))
            if step.timeout is not None:
                attrs.append("width=1.4")
        if states and step.name in states:
            state = states[step.name]
            attrs.append(f"fillcolor={quote(STATE_COLORS.get(state, PENDING_FILL))}")
            attrs.append(f"class={quote('state-' + state)}")
        lines.append(f"  {quote(step.name)} [{', '.join(attrs)}];")
    edges = sorted((need, step.name) for step in flow.steps for need in set(step.needs))
    # An edge into a step with ``if:`` is dashed: the step may be skipped, or (a handler)
    # run when the step it needs failed.
    conditional = {step.name for step in flow.steps if step.condition is not None}
    lines.extend(f"  {quote(need)} -> {quote(name)}"
                 f"{' [style=dashed]' if name in conditional else ''};" for need, name in edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


class Graph:
    """The DOT source of a flow (``str(graph)``), drawn by graphviz where it is installed.

    ``flow.graph()`` and ``run.graph()`` return one; a run's graph colours each step by the
    state the store recorded for it.
    """

    def __init__(self, flow: Flow, states: Mapping[str, str] | None = None) -> None:
        self.flow = flow
        self.states = dict(states or {})

    @property
    def dot(self) -> str:
        return to_dot(self.flow, self.states or None)

    def svg(self) -> str:
        """The picture; raises ``DotNotFoundError`` when graphviz's ``dot`` is missing."""
        from .svg import render  # svg.py builds on this module, not the other way round

        return render(self.flow, "svg", self.states or None).decode()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": self.dot}
        with contextlib.suppress(DotNotFoundError):  # the DOT text then stands alone
            bundle["image/svg+xml"] = self.svg()
        return bundle

    def __str__(self) -> str:
        return self.dot

    def __repr__(self) -> str:
        return f"<Graph of {self.flow.name!r}: {len(self.flow.steps)} steps>"
