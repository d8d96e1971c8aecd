"""A flow's graph as an object: DOT text, and an SVG picture in a notebook.

``flow.graph()`` and ``run.graph()`` return one; a run's graph colours each step by the state
the store recorded for it, with the palette of the live view.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from ..model import Flow

__all__ = ["Graph"]


class Graph:
    """The DOT source of a flow (``str(graph)``), drawn by graphviz where it is installed."""

    def __init__(self, flow: Flow, states: Mapping[str, str] | None = None) -> None:
        self.flow = flow
        self.states = dict(states or {})

    @property
    def dot(self) -> str:
        from ..render import to_dot

        return to_dot(self.flow, self.states or None)

    def svg(self) -> str:
        """The picture; raises ``DotNotFoundError`` when graphviz's ``dot`` is missing."""
        from ..render import render

        return render(self.flow, "svg", self.states or None).decode()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from ..render import DotNotFoundError

        bundle: dict[str, Any] = {"text/plain": self.dot}
        with contextlib.suppress(DotNotFoundError):  # the DOT text then stands alone
            bundle["image/svg+xml"] = self.svg()
        return bundle

    def __str__(self) -> str:
        return self.dot

    def __repr__(self) -> str:
        return f"<Graph of {self.flow.name!r}: {len(self.flow.steps)} steps>"
