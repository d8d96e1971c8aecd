"""The graph of a flow as DOT, and as SVG/PNG through graphviz's ``dot`` when it is installed.

DOT output is deterministic (nodes in file order, edges sorted), so it can be compared byte for
byte. Colours follow the step state; the same palette is used by the notebook view.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping

from .errors import ChronumError
from .model import Flow

__all__ = ["STATE_COLORS", "DotNotFoundError", "render", "to_dot"]

#: Fill colours by step state (pending is white).
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
}

INSTALL_HINT = (
    "graphviz's `dot` program was not found on PATH; install the graphviz package "
    "(Debian/Ubuntu: apt-get install graphviz, macOS: brew install graphviz, conda: "
    "conda install graphviz), or write DOT with `-o graph.dot`"
)


class DotNotFoundError(ChronumError):
    exit_code = 2


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(flow: Flow, states: Mapping[str, str] | None = None) -> str:
    """DOT source for ``flow``; ``states`` colours the nodes (a step name to a state)."""
    lines = [
        f"digraph {_quote(flow.name)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fillcolor="#ffffff"];',
    ]
    for step in flow.steps:
        attrs = [f"label={_quote(step.name)}", f"tooltip={_quote(step.executor)}"]
        if states and step.name in states:
            state = states[step.name]
            attrs.append(f"fillcolor={_quote(STATE_COLORS.get(state, '#ffffff'))}")
            attrs.append(f"class={_quote('state-' + state)}")
        lines.append(f"  {_quote(step.name)} [{', '.join(attrs)}];")
    edges = sorted((need, step.name) for step in flow.steps for need in set(step.needs))
    for need, name in edges:
        lines.append(f"  {_quote(need)} -> {_quote(name)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(flow: Flow, fmt: str = "svg", states: Mapping[str, str] | None = None) -> bytes:
    """Lay the graph out with ``dot -T<fmt>``; raises ``DotNotFoundError`` without graphviz."""
    dot = shutil.which("dot")
    if dot is None:
        raise DotNotFoundError(INSTALL_HINT)
    proc = subprocess.run([dot, f"-T{fmt}"], input=to_dot(flow, states).encode(),
                          capture_output=True, check=False)
    if proc.returncode != 0:
        raise ChronumError(f"dot failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout
