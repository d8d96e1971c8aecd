"""Pictures drawn by graphviz's ``dot``: a flow's graph, and the graph of a run.

``render`` draws a flow for ``chronum graph -o x.svg|png``. A run's graph is laid out once
(``layout`` in the live view, without blocking the kernel's loop; ``layout_sync`` elsewhere),
because laying it out again at every state change would re-send the whole SVG each time:

- the live view recolours it by swapping a small ``<style>`` (``stylesheet``) that sets each
  node's fill, a ``--chronum-state`` custom property (browser tests read it with
  ``getComputedStyle``) and which "try N" badge is visible;
- a finished run is baked (``bake``): its states written into the SVG itself (``data-state``,
  ``class="node state-<word>"``, the box's fill), so a saved notebook shows them where a
  sanitizer strips stylesheets.

Chronum writes only what dot cannot into dot's SVG; the rest is dot's text, unchanged:

- each node group's opening tag, ``<g id="<prefix>_<i>" class="node" data-step="<name>">``:
  dot writes no ``data-`` attributes, and browser tests and baked pictures find steps by
  ``data-step``; the id carries the run's prefix, so a drawing serves every run of its flow;
- each box's fill colour, in a baked picture;
- for a step that retries, hidden "try N" texts under its name (ids ``<prefix>_<i>_a<N>``),
  one of which the stylesheet shows: dot draws one label per node, and a stylesheet can show
  or hide a text but not change it. ``to_dot`` lays such a box out taller to make room.

So dot's SVG is cut once, where those go (a ``_Drawing``), and each picture of a run is that
text joined with what chronum writes; no picture is searched or edited afterwards.
"""

from __future__ import annotations

import asyncio
import html
import shutil
import subprocess
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cached_property

from .._args import duration_seconds, format_duration
from .._lru import LRU
from ..errors import ChronumError, DotNotFoundError
from ..model import Flow
from .dot import PENDING_FILL, STATE_COLORS, node_id, to_dot
from .groups import Group

__all__ = ["GRAPH_MAX_HEIGHT", "MAX_BADGE", "Layout", "bake", "counted", "elapsed_text",
           "graph_for", "layout", "layout_sync", "prefix_for", "remember_graph", "render",
           "stylesheet", "timeout_label"]

#: Pixels a graph grows to before its box scrolls (it is scaled to the cell's width first).
GRAPH_MAX_HEIGHT = 800
#: Attempt badges drawn per step: "try 2" .. "try MAX_BADGE" (later tries show the last one).
MAX_BADGE = 9
#: Node ids of the DOT given to ``dot``; each run's pictures carry the run's own prefix.
_MARK = "chronumnode"


def render(flow: Flow, fmt: str = "svg", states: Mapping[str, str] | None = None) -> bytes:
    """``dot -T<fmt>`` of the flow's DOT; raises ``DotNotFoundError`` without graphviz."""
    dot = shutil.which("dot")
    if dot is None:
        raise DotNotFoundError()
    proc = subprocess.run([dot, f"-T{fmt}"], input=to_dot(flow, states).encode(),
                          capture_output=True, check=False)
    if proc.returncode != 0:
        raise ChronumError(f"dot failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


@dataclass(frozen=True, slots=True)
class _Node:
    """One node group of dot's SVG, without its opening and closing tags."""

    index: int  # the step's place in the flow
    head: str  # dot's text up to the box's fill colour (the title, the box's first attribute)
    tail: str  # dot's text after the fill colour: the rest of the box, and the label
    label_x: str | None  # where dot put the label (None: no label found): badges go under it
    label_y: float


@dataclass(frozen=True, slots=True)
class _Drawing:
    """dot's SVG cut at its node groups: ``around[k]`` is the text before the ``k``-th group
    (in dot's order, which is not file order), ``around[-1]`` the text after the last."""

    around: tuple[str, ...]
    nodes: tuple[_Node, ...]


def _attribute(text: str, tag: int, name: str) -> str | None:
    """The value of attribute ``name`` in the tag that starts at ``tag``."""
    end = text.find(">", tag)
    at = text.find(f' {name}="', tag, end)
    if at < 0:
        return None
    at += len(name) + 3
    return text[at:text.find('"', at)]


def _cut(svg: str, n_steps: int) -> _Drawing | None:
    """dot's SVG of ``to_dot(flow, prefix=_MARK)`` as a ``_Drawing``; None when it is not
    that picture (each node group is found by the id the DOT gave it)."""
    svg = svg[svg.find("<svg"):]  # no XML prolog or DOCTYPE: the picture goes inside HTML
    groups = []
    for index in range(n_steps):
        tag = f'<g id="{node_id(_MARK, index)}" class="node">'
        start = svg.find(tag)
        end = svg.find("</g>", start)
        if start < 0 or end < 0:
            return None
        groups.append((start, start + len(tag), end, index))
    groups.sort()
    around, nodes, done = [], [], 0
    for start, body_start, end, index in groups:
        body = svg[body_start:end]
        fill = body.find(' fill="', max(body.find("</title>"), 0))
        if fill < 0:
            return None
        fill += len(' fill="')
        fill_end = body.find('"', fill)
        label = body.find("<text ", fill_end)
        x = _attribute(body, label, "x") if label >= 0 else None
        y = _attribute(body, label, "y") if label >= 0 else None
        around.append(svg[done:start])
        nodes.append(_Node(index, body[:fill], body[fill_end:], x if y else None,
                           float(y or 0)))
        done = end + len("</g>")
    around.append(svg[done:])
    return _Drawing(tuple(around), tuple(nodes))


class Layout:
    """A flow laid out for one run: ``svg`` is the live picture, ``bake`` the final one.

    Element ids start with ``prefix`` (``prefix_for(run_id)``): unique per run, so the
    pictures of several runs on one page do not restyle each other.
    """

    def __init__(self, drawing: _Drawing, prefix: str, flow: Flow) -> None:
        self.flow = flow
        self.prefix = prefix
        self.steps = flow.step_names
        #: Per step, the last "try N" badge drawn (0 for steps that do not retry).
        self.badges = tuple(min(step.retry.limit + 1, MAX_BADGE) if step.retry.limit else 0
                            for step in flow.steps)
        #: Per step, its timeout (None: none): a hidden "timed out after N s" text is drawn.
        self.timeouts = tuple(step.timeout for step in flow.steps)
        self._drawing = drawing

    @cached_property
    def svg(self) -> str:
        """Every node pending and every badge hidden: the stylesheet paints the states."""
        return _join(self, None, {})


def _badge(group: str, n: int, node: _Node, hidden: bool) -> str:
    display = ' display="none"' if hidden else ""
    return (f'<text id="{group}_a{n}" class="chronum-badge"{display} text-anchor="middle" '
            f'x="{node.label_x}" y="{node.label_y + 13:g}" font-family="Helvetica,sans-Serif" '
            f'font-size="9">try {n}</text>\n')


def _timeout_text(group: str, node: _Node, seconds: float, below_badge: bool,
                  hidden: bool) -> str:
    display = ' display="none"' if hidden else ""
    y = node.label_y + (24 if below_badge else 13)
    return (f'<text id="{group}_t" class="chronum-timeout"{display} text-anchor="middle" '
            f'x="{node.label_x}" y="{y:g}" font-family="Helvetica,sans-Serif" font-size="9" '
            f'fill="#8a1c1c">{timeout_label(seconds)}</text>\n')


#: The engine's units ("10m") as pictures write them, after a space ("10 min").
_UNIT_WORDS = {"s": "s", "m": "min", "h": "h", "d": "d"}


def timeout_label(seconds: float | str) -> str:
    """The pictures' "timed out after 10 min" for 600 seconds (or the engine's "10m")."""
    if isinstance(seconds, str):
        seconds = duration_seconds(seconds) or 0.0
    text = format_duration(seconds)
    return f"timed out after {text[:-1]} {_UNIT_WORDS[text[-1]]}"


#: Width of a fan-out node's bar, in the picture's units (points).
BAR = 40.0


def _counter(group: str, node: _Node, counted: Group, below: float) -> str:
    """A fan-out node's counter ("37/100") and bar, under its name (and its badges)."""
    x, y = float(node.label_x or 0), node.label_y + below
    total = max(counted.total, 1)
    filled = BAR * counted.done / total
    colour = STATE_COLORS["failed"] if counted.failed else "#52b788"
    return (f'<text id="{group}_n" class="chronum-count" text-anchor="middle" x="{x:g}" '
            f'y="{y:g}" font-family="Helvetica,sans-Serif" font-size="9">'
            f"{counted.done}/{counted.total}</text>\n"
            f'<rect id="{group}_bar" class="chronum-bar" x="{x - BAR / 2:g}" y="{y + 3:g}" '
            f'width="{BAR:g}" height="3" fill="#e5e5e5"/>\n'
            f'<rect id="{group}_barfill" class="chronum-bar-fill" x="{x - BAR / 2:g}" '
            f'y="{y + 3:g}" width="{filled:.1f}" height="3" fill="{colour}"/>\n')


def counted(graph: Layout, groups: Mapping[str, Group]) -> str:
    """The live picture with each fan-out node's counter and bar as ``groups`` have them."""
    return _join(graph, None, {}, (), groups)


def _elapsed_slot(group: str, node: _Node) -> str:
    """Where the live picture shows a running step's time: an empty HTML box above the name,
    its text and look set by the stylesheet (``::after``), since a stylesheet cannot change SVG
    text. No ``style`` attribute: a page with a Content Security Policy (the dashboard's) reports
    every inline style it meets, even in a picture it then strips."""
    return (f'<foreignObject x="{float(node.label_x or 0) - 40:g}" y="{node.label_y - 23:g}" '
            f'width="80" height="12"><div xmlns="http://www.w3.org/1999/xhtml" '
            f'id="{group}_e" class="chronum-elapsed-badge"></div></foreignObject>\n')


def elapsed_text(seconds: float) -> str:
    """A running step's time as its badge shows it: "7 s", "2 min 5 s"."""
    whole = int(seconds)
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60} s"


def _join(graph: Layout, states: Mapping[str, str] | None, attempts: Mapping[str, int],
          timed_out: Collection[str] = (), groups: Mapping[str, Group] | None = None) -> str:
    """The picture: the live one (``states`` None) or one with ``states`` baked in."""
    drawing = graph._drawing
    parts = [drawing.around[0]]
    for node, after in zip(drawing.nodes, drawing.around[1:], strict=True):
        name = graph.steps[node.index]
        group = node_id(graph.prefix, node.index)
        step = html.escape(name)
        last = graph.badges[node.index] if node.label_x is not None else 0
        if states is None:
            parts.append(f'<g id="{group}" class="node" data-step="{step}">'
                         f"{node.head}{PENDING_FILL}{node.tail}")
            parts.extend(_badge(group, n, node, hidden=True) for n in range(2, last + 1))
            seconds = graph.timeouts[node.index]
            if seconds is not None and node.label_x is not None:
                parts.append(_timeout_text(group, node, seconds, bool(last), hidden=True))
            if node.label_x is not None:
                parts.append(_elapsed_slot(group, node))
        else:
            state = states.get(name, "pending")
            parts.append(f'<g id="{group}" class="node state-{state}" data-step="{step}" '
                         f'data-state="{state}">'
                         f"{node.head}{STATE_COLORS.get(state, PENDING_FILL)}{node.tail}")
            tries = attempts.get(name, 0)
            if last and tries >= 2:  # only the badge of the attempt reached, shown
                parts.append(_badge(group, min(tries, last), node, hidden=False))
            seconds = graph.timeouts[node.index]
            if name in timed_out and seconds is not None and node.label_x is not None:
                parts.append(_timeout_text(group, node, seconds, bool(last), hidden=False))
        if groups and name in groups and node.label_x is not None:
            # under the name, the badge row and the "timed out" row when the step has them
            below = 13.0 + 11.0 * bool(last) + 11.0 * (seconds is not None)
            parts.append(_counter(group, node, groups[name], below))
        parts.append("</g>")
        parts.append(after)
    return "".join(parts)


def bake(graph: Layout, states: Mapping[str, str], attempts: Mapping[str, int],
         timed_out: Collection[str] = (), groups: Mapping[str, Group] | None = None) -> str:
    """The SVG with the states written in: fills, ``data-state``, ``state-<word>`` classes,
    the badge of the attempt each step reached, "timed out after N s" under the steps in
    ``timed_out``, and each fan-out step's counter."""
    return _join(graph, states, attempts, timed_out, groups)


def stylesheet(graph: Layout, states: Mapping[str, str], attempts: Mapping[str, int],
               timed_out: Collection[str] = (), elapsed: Mapping[str, float] | None = None
               ) -> str:
    """The ``<style>`` that paints ``states`` onto the live picture: one rule per state."""
    p = graph.prefix
    by_state: dict[str, list[str]] = {}
    badges: list[str] = []
    for i, name in enumerate(graph.steps):
        state = states.get(name, "pending")
        if state != "pending":
            by_state.setdefault(state, []).append(f"#{node_id(p, i)}")
        tries = attempts.get(name, 0)
        if graph.badges[i] and tries >= 2:
            badges.append(f"#{node_id(p, i)}_a{min(tries, graph.badges[i])}")
    rules = [f'[id^="{p}_"]>rect,[id^="{p}_"]>path,[id^="{p}_"]>polygon'
             f"{{fill:var(--chronum-fill,{PENDING_FILL})}}"]
    for state in sorted(by_state):
        color = STATE_COLORS.get(state, PENDING_FILL)
        rules.append(f"{','.join(by_state[state])}"
                     f"{{--chronum-state:{state};--chronum-fill:{color}}}")
    badges.extend(f"#{node_id(p, i)}_t" for i, name in enumerate(graph.steps)
                  if name in timed_out and graph.timeouts[i] is not None)
    if badges:
        rules.append(f"{','.join(badges)}{{display:inline}}")
    index = {name: i for i, name in enumerate(graph.steps)}
    for name, seconds in sorted((elapsed or {}).items()):
        if name in index:
            text = elapsed_text(seconds)
            rules.append(f'#{node_id(p, index[name])}_e::after{{content:"{text}"}}')
    rules.append(f'[id^="{p}_"] .chronum-elapsed-badge{{font:9px Helvetica,'
                 "sans-serif;line-height:12px;text-align:center;color:#444}")
    # The picture fits the cell's width, and grows downwards up to its box's limit.
    rules.append(".chronum-graph svg{max-width:100%;height:auto}")
    return "<style>" + "\n".join(rules) + "</style>"


#: Drawings of this process by (``dot`` program, DOT source): running a cell again (the usual
#: way of working in a notebook) draws its graph at once, without another ``dot`` competing
#: with the run. A drawing holds no run id, so it serves every run of its flow.
_DRAWINGS: LRU[tuple[str, str], _Drawing] = LRU(8)


def _laid_out(flow: Flow, prefix: str, key: tuple[str, str], output: bytes) -> Layout | None:
    drawing = _cut(output.decode("utf-8", "replace"), len(flow.steps))
    if drawing is None:
        return None
    _DRAWINGS[key] = drawing
    return Layout(drawing, prefix, flow)


def _drawn_before(flow: Flow, prefix: str, dot: str | None
                  ) -> tuple[tuple[str, str] | None, Layout | None]:
    """The cache key of ``flow``'s drawing, and the layout drawn before (None when there is
    none, or no ``dot`` to draw one: then the key is None too)."""
    if dot is None:
        return None, None
    key = (dot, to_dot(flow, prefix=_MARK))
    known = _DRAWINGS.lookup(key)
    return key, None if known is None else Layout(known, prefix, flow)


async def layout(flow: Flow, prefix: str, dot: str | None = None) -> Layout | None:
    """Lay the flow out with ``dot -Tsvg`` in a subprocess, without blocking the event loop.

    None when graphviz is not installed or fails (the view then shows only its table). A flow
    laid out before in this process (same steps and needs) is not laid out again.
    """
    key, known = _drawn_before(flow, prefix, dot or shutil.which("dot"))
    if key is None or known is not None:
        return known
    # Below the kernel's priority: on a small machine the layout of a large graph competes
    # with the run it draws, and the run matters more than the picture arriving early.
    nice = shutil.which("nice")
    argv = [nice, "-n", "10", key[0], "-Tsvg"] if nice else [key[0], "-Tsvg"]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await proc.communicate(key[1].encode())
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    return _laid_out(flow, prefix, key, out) if proc.returncode == 0 else None


def layout_sync(flow: Flow, prefix: str) -> Layout | None:
    """``layout`` for code that is not a coroutine (a run displayed outside any live view)."""
    key, known = _drawn_before(flow, prefix, shutil.which("dot"))
    if key is None or known is not None:
        return known
    proc = subprocess.run([key[0], "-Tsvg"], input=key[1].encode(), capture_output=True,
                          check=False)
    return _laid_out(flow, prefix, key, proc.stdout) if proc.returncode == 0 else None


def prefix_for(run_id: str) -> str:
    """Element ids of a run's picture start with this: unique per run, valid in CSS."""
    return f"chronum_{run_id}"


#: Laid-out graphs of recent runs (None: graphviz could not draw it), so a finished run is
#: redrawn, and its display repeated, without running ``dot`` again.
_RUN_GRAPHS: LRU[str, Layout | None] = LRU(32)


def remember_graph(run_id: str, graph: Layout | None) -> None:
    _RUN_GRAPHS[run_id] = graph


def graph_for(run_id: str, flow: Flow) -> Layout | None:
    """The run's graph of ``flow``: remembered, or laid out now (a run is drawn again with
    another flow when a caller knows better: the notebook's cell flow, say, which has needs,
    where the step names recorded have none)."""
    if run_id in _RUN_GRAPHS:
        known = _RUN_GRAPHS.lookup(run_id)
        if known is None or known.flow == flow:
            return known
    graph = layout_sync(flow, prefix_for(run_id))
    remember_graph(run_id, graph)
    return graph
