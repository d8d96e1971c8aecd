"""The graph picture of a run: laid out once by ``dot``, recoloured by a small ``<style>``.

Re-running ``dot`` for every state change would cost 80–400 ms of layout per update on a large
flow and re-send the whole SVG; instead the SVG is made once per run with a known ``id`` per
node (``<prefix>_<index>``), and the live view swaps a stylesheet that sets each node's fill, a
``--chronum-state`` custom property (readable with ``getComputedStyle`` by browser tests) and
which pre-drawn attempt badge ("try 2") is visible. A finished run is "baked": states written
into the SVG itself (``data-state``, ``class="node state-<word>"``, fills), so a saved notebook
shows it even where stylesheets are stripped.

No ipywidgets here: the static pictures are used without a widget front end too.
"""

from __future__ import annotations

import asyncio
import html
import re
import shutil
import subprocess
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from ..model import Flow
from ..render import STATE_COLORS

__all__ = ["Graph", "bake", "dot_source", "layout", "layout_sync", "stylesheet"]

#: Attempt badges drawn per step: "try 2" .. "try MAX_BADGE" (later tries show the last one).
MAX_BADGE = 9

_PENDING_FILL = STATE_COLORS["pending"]


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def node_id(prefix: str, index: int) -> str:
    return f"{prefix}_{index}"


def dot_source(flow: Flow, prefix: str) -> str:
    """DOT like ``render.to_dot`` plus an ``id`` per node (no tooltip: it nests a ``<g>``);
    taller boxes for steps that retry, to fit their attempt badge."""
    lines = [
        f"digraph {_quote(flow.name)} {{",
        "  rankdir=LR;",
        # Square boxes, drawn rounded by ``_rounded_box``: a box is four corners to read back,
        # where dot's own rounded box is a 44-number path (2.5x the time, on the kernel's loop).
        '  node [shape=box, style="filled", fontname="Helvetica", fillcolor="#ffffff"];',
    ]
    for i, step in enumerate(flow.steps):
        extra = ", height=0.6" if step.retry.limit else ""
        lines.append(f"  {_quote(step.name)} [id={_quote(node_id(prefix, i))}, "
                     f"label={_quote(step.name)}{extra}];")
    edges = sorted((need, step.name) for step in flow.steps for need in set(step.needs))
    for need, name in edges:
        lines.append(f"  {_quote(need)} -> {_quote(name)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Graph:
    """A laid-out flow: the SVG text (with ``data-step`` and badges) and its id prefix."""

    svg: str
    prefix: str
    steps: tuple[str, ...]


_NODE = re.compile(r'<g id="(?P<id>[A-Za-z0-9_]+)_(?P<i>\d+)" class="node">(?P<body>.*?)</g>',
                   re.DOTALL)
_NOISE = re.compile(r"<!--.*?-->\n?|<title>[^<]*&#45;&gt;[^<]*</title>\n?", re.DOTALL)
_BADGE = re.compile(r'<text id="[^"]+_a\d+"[^>]*>[^<]*</text>\n?')
_TEXT_POS = re.compile(r'<text[^>]*? x="(?P<x>-?[\d.]+)" y="(?P<y>-?[\d.]+)"')
_BOX = re.compile(
    r'<polygon fill="(?P<fill>[^"]*)" stroke="(?P<stroke>[^"]*)" points="(?P<points>[^"]*)"/>')
#: dot's corner radius for ``style=rounded`` boxes: 12 points, at most a third of a side.
_CORNER = 12.0
_EDGE_ID = re.compile(r'<g id="edge\d+" class="edge">')
_ROOT = '<g id="graph0" class="graph"'
#: Text attributes every label repeats: said once on the root group, which its texts inherit.
_TEXT_ATTRS = ('text-anchor="middle"', 'font-family="Helvetica,sans-Serif"', 'font-size="14.00"')


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _rounded_box(match: re.Match[str]) -> str:
    """A node's box (dot's closed polygon of four corners) as a ``<rect>`` with the corners
    dot gives ``style=rounded`` boxes, in a quarter of the bytes of dot's rounded path."""
    try:
        values = list(map(float, match["points"].replace(",", " ").split()))
    except ValueError:
        return match[0]
    if len(values) != 10:  # not a box (a closed polygon of four corners)
        return match[0]
    xs, ys = values[0:8:2], values[1:8:2]
    left, top = min(xs), min(ys)
    width, height = max(xs) - left, max(ys) - top
    radius = min(_CORNER, width / 3, height / 3)
    return (f'<rect fill="{match["fill"]}" stroke="{match["stroke"]}" x="{_number(left)}" '
            f'y="{_number(top)}" width="{_number(width)}" height="{_number(height)}" '
            f'rx="{_number(radius)}"/>')


def _compact(svg: str) -> str:
    """The same picture in about half the bytes: it is sent to the browser at least twice
    (the live view, then the final picture) and saved in the notebook.

    Drops comments and edge titles, edge ids nothing refers to, the font attributes every
    label repeats (set once on the root group instead: inherited, no stylesheet needed) and
    draws each rounded box as a ``<rect>``.
    """
    svg = svg[svg.find("<svg"):]  # drop the XML prolog and DOCTYPE: the SVG goes inside HTML
    svg = _NOISE.sub("", svg)
    svg = _EDGE_ID.sub('<g class="edge">', svg)
    if _ROOT in svg:
        for attr in _TEXT_ATTRS:
            svg = svg.replace(f" {attr}", "")
        svg = svg.replace(_ROOT, f"{_ROOT} {' '.join(_TEXT_ATTRS)}", 1)
    return svg


def _decorate(svg: str, flow: Flow, prefix: str) -> str:
    """Add ``data-step`` to each node group and hidden "try N" badges to steps that retry."""
    svg = _compact(svg)

    def node(match: re.Match[str]) -> str:
        i = int(match["i"])
        if match["id"] != prefix or i >= len(flow.steps):
            return match[0]
        step = flow.steps[i]
        body = _BOX.sub(_rounded_box, match["body"], count=1)
        badges = ""
        pos = _TEXT_POS.search(body)
        if step.retry.limit and pos is not None:
            x, y = float(pos["x"]), float(pos["y"])
            for n in range(2, min(step.retry.limit + 1, MAX_BADGE) + 1):
                badges += (f'<text id="{node_id(prefix, i)}_a{n}" class="chronum-badge" '
                           f'display="none" x="{x:g}" y="{y + 13:g}" '
                           f'font-size="9">try {n}</text>\n')
        return (f'<g id="{node_id(prefix, i)}" class="node" '
                f'data-step="{html.escape(step.name)}">{body}{badges}</g>')

    return _NODE.sub(node, svg)


#: Laid-out graphs of this process, by DOT source written with ``_PLACEHOLDER`` as prefix:
#: running a cell again (the usual way of working in a notebook) draws its graph at once,
#: instead of paying ``dot`` again (~0.2 s for 1,000 steps, competing with the run).
_LAYOUTS: OrderedDict[tuple[str, str], str] = OrderedDict()
_LAYOUTS_KEPT = 8
_PLACEHOLDER = "chronumlayout"


def _lookup(dot: str, flow: Flow, prefix: str
            ) -> tuple[tuple[str, str], Graph | None, str]:
    """The cache key of this flow's layout, and either the Graph laid out before or the DOT
    source to lay out (the same text with this run's prefix: one source built, not two)."""
    generic = dot_source(flow, _PLACEHOLDER)
    # Badges depend on each retry limit, which the DOT source only tells apart from zero.
    limits = ",".join(str(step.retry.limit) for step in flow.steps)
    key = (dot, f"{limits}\n{generic}")
    svg = _LAYOUTS.get(key)
    if svg is None:
        return key, None, generic.replace(f'id="{_PLACEHOLDER}_', f'id="{prefix}_')
    _LAYOUTS.move_to_end(key)
    # Node ids are the only place the prefix appears: `id="<prefix>_<i>` (and `_a<n>` badges).
    svg = svg.replace(f'id="{_PLACEHOLDER}_', f'id="{prefix}_')
    return key, Graph(svg, prefix, flow.step_names), ""


def _laid_out(key: tuple[str, str], output: bytes, flow: Flow, prefix: str) -> Graph:
    """``dot``'s SVG decorated, and remembered for the next run of the same flow."""
    graph = Graph(_decorate(output.decode("utf-8", "replace"), flow, prefix), prefix,
                  flow.step_names)
    _LAYOUTS[key] = graph.svg.replace(f'id="{prefix}_', f'id="{_PLACEHOLDER}_')
    while len(_LAYOUTS) > _LAYOUTS_KEPT:
        _LAYOUTS.popitem(last=False)
    return graph


async def layout(flow: Flow, prefix: str, dot: str | None = None) -> Graph | None:
    """Lay the flow out with ``dot -Tsvg`` in a subprocess, without blocking the event loop.

    Returns None when graphviz is not installed (the view then shows only its table). A flow
    laid out before in this process (same steps, needs and retries) is not laid out again.
    """
    dot = dot or shutil.which("dot")
    if dot is None:
        return None
    key, known, source = _lookup(dot, flow, prefix)
    if known is not None:
        return known
    # Below the kernel's priority: on a small machine the layout of a large graph competes
    # with the run it draws, and the run matters more than the picture arriving early.
    nice = shutil.which("nice")
    argv = [nice, "-n", "10", dot, "-Tsvg"] if nice else [dot, "-Tsvg"]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await proc.communicate(source.encode())
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        return None
    return _laid_out(key, out, flow, prefix)


def layout_sync(flow: Flow, prefix: str) -> Graph | None:
    """``layout`` for code that is not a coroutine (a run displayed outside any live view)."""
    dot = shutil.which("dot")
    if dot is None:
        return None
    key, known, source = _lookup(dot, flow, prefix)
    if known is not None:
        return known
    proc = subprocess.run([dot, "-Tsvg"], input=source.encode(), capture_output=True,
                          check=False)
    if proc.returncode != 0:
        return None
    return _laid_out(key, proc.stdout, flow, prefix)


def _badge(attempt: int) -> int:
    return min(attempt, MAX_BADGE)


def stylesheet(graph: Graph, states: Mapping[str, str], attempts: Mapping[str, int]) -> str:
    """The ``<style>`` that paints ``states`` onto the laid-out graph: one rule per state."""
    p = graph.prefix
    by_state: dict[str, list[str]] = {}
    badges: list[str] = []
    for i, name in enumerate(graph.steps):
        state = states.get(name, "pending")
        if state != "pending":
            by_state.setdefault(state, []).append(f"#{node_id(p, i)}")
        n = attempts.get(name, 0)
        if n >= 2:
            badges.append(f"#{node_id(p, i)}_a{_badge(n)}")
    rules = [f'[id^="{p}_"]>rect,[id^="{p}_"]>path,[id^="{p}_"]>polygon'
             f"{{fill:var(--chronum-fill,{_PENDING_FILL})}}"]
    for state in sorted(by_state):
        color = STATE_COLORS.get(state, _PENDING_FILL)
        rules.append(f"{','.join(by_state[state])}"
                     f"{{--chronum-state:{state};--chronum-fill:{color}}}")
    if badges:
        rules.append(f"{','.join(badges)}{{display:inline}}")
    return "<style>" + "\n".join(rules) + "</style>"


def bake(graph: Graph, states: Mapping[str, str], attempts: Mapping[str, int]) -> str:
    """The SVG with the states written in: fills, ``data-state``, ``state-<word>`` classes.

    Node groups are found by splitting at ``<g id="`` rather than with a regular expression
    over the whole picture: on 1,000 steps that is several times faster, and baking is on
    the path of every cell that ends.
    """
    p = graph.prefix
    head = f"{p}_"
    tag = '" class="node" data-step="'
    pieces = graph.svg.split('<g id="')
    for k in range(1, len(pieces)):
        piece = pieces[k]
        if not piece.startswith(head):
            continue
        quote = piece.find('"', len(head))
        digits = piece[len(head):quote]
        if not digits.isdigit() or not piece.startswith(tag, quote):
            continue
        i = int(digits)
        open_end = piece.find('">', quote + len(tag))
        close = piece.find("</g>", open_end)
        if i >= len(graph.steps) or open_end < 0 or close < 0:
            continue
        name = graph.steps[i]
        state = states.get(name, "pending")
        color = STATE_COLORS.get(state, _PENDING_FILL)
        body = piece[open_end + 2:close].replace(f'fill="{_PENDING_FILL}"', f'fill="{color}"', 1)
        if "chronum-badge" in body:  # only steps that retry carry badges
            n = attempts.get(name, 0)
            body = _keep_badge(body, f'id="{node_id(p, i)}_a{_badge(n)}"' if n >= 2 else None)
        pieces[k] = (f'{head}{i}" class="node state-{state}" data-step="'
                     f'{html.escape(name)}" data-state="{state}">{body}{piece[close:]}')
    return '<g id="'.join(pieces)


def _keep_badge(body: str, shown: str | None) -> str:
    """Only the badge of the attempt reached stays, made visible; the others go."""
    def badge(match: re.Match[str]) -> str:
        if shown and match[0].startswith(f"<text {shown}"):
            return match[0].replace(' display="none"', "")
        return ""

    return _BADGE.sub(badge, body)
