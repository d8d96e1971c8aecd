"""Pictures of flows and runs: DOT, SVG through graphviz's ``dot``, HTML, the timeline.

Standard library and chronum's pure core only (``model``, ``errors``, ``_lru``): the notebook,
the CLI, the public API and any later front end draw with it, and it reads nothing itself
(callers pass flows, states and store rows in).

    dot.py       the one DOT builder, the state palette, ``Graph`` (``flow.graph()``)
    svg.py       running ``dot``; a run's graph laid out once, recoloured or baked
    html.py      the static picture of a run and its mimebundle
    timeline.py  the Gantt chart of attempts and ``chronum.show``'s picture
"""

from __future__ import annotations

from .dot import STATE_COLORS, Graph, to_dot

__all__ = ["STATE_COLORS", "Graph", "to_dot"]
