"""Ordering and reachability on a flow's ``needs`` graph, built on ``graphlib``.

Pure functions of a ``chronum.model.Flow`` (or of a plain ``name -> needs`` mapping): nothing
here depends on hashing order, only on the order steps are written in the file. Arrows in a
cycle follow the direction work flows, as in graphlib's ``CycleError`` and in the rendered
graph: ``a -> b`` means ``b`` needs ``a``.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from graphlib import CycleError, TopologicalSorter

from .errors import SpecError
from .model import Flow

__all__ = ["cycle_hint", "downstream", "find_cycle", "order", "upstream"]


def _dependents(edges: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """``name -> steps that need it``, each list in file order; unknown needs are dropped."""
    out: dict[str, list[str]] = {name: [] for name in edges}
    for name, needs in edges.items():
        for need in dict.fromkeys(needs):
            if need in out:
                out[need].append(name)
    return out


def cycle_hint(cycle: list[str]) -> str:
    """How to break ``cycle`` (a closed path from ``find_cycle``): its last step needs the one
    before it, so that need is one to remove."""
    if len(cycle) < 3:
        return ""
    return f"remove one need on this loop, e.g. {cycle[-2]!r} from the needs of {cycle[-1]!r}"


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle in ``edges`` (step -> the steps it needs, in file order), or None.

    The cycle is returned as a closed path ``[a, b, c, a]`` (``b`` needs ``a``, ...). It is the
    shortest cycle through the first step, in file order, that lies on any cycle, and starts
    there, so the same file always reports the same cycle.

    Linear in steps plus needs: one pass finds the strongly connected components, and the one
    breadth-first search stays inside the component of that first step. Searching from every
    stuck step instead would cost a full search per step downstream of a cycle.
    """
    listed = {name: list(dict.fromkeys(needs)) for name, needs in edges.items()}
    index = {name: i for i, name in enumerate(listed)}
    if all(index.get(need, -1) < i for i, needs in enumerate(listed.values()) for need in needs):
        return None  # every step needs only steps written before it: no cycle possible
    dependents = _dependents(listed)
    kept = _on_or_between_cycles(listed, dependents)
    component = _components({n: [d for d in dependents[n] if d in kept] for n in kept})
    sizes: dict[int, int] = {}
    for c in component.values():
        sizes[c] = sizes.get(c, 0) + 1
    for start in listed:
        label = component.get(start)
        if label is not None and (sizes[label] > 1 or start in dependents[start]):
            return _shortest_cycle(start, dependents, component)
    return None


def _on_or_between_cycles(edges: Mapping[str, list[str]],
                          dependents: Mapping[str, list[str]]) -> set[str]:
    """The steps left after peeling, again and again, those that need nothing left and those
    nothing left needs: no cycle passes through a peeled step. A long chain in front of or
    behind a cycle goes in a loop of dict updates, before the graph search sees the rest."""
    needs_left = {n: len(ns) for n, ns in edges.items()}
    for n, ns in edges.items():  # a need that names no step is not waited on
        for m in ns:
            if m not in edges:
                needs_left[n] -= 1
    needed_left = {n: len(ds) for n, ds in dependents.items()}
    peel = [n for n in edges if needs_left[n] == 0 or needed_left[n] == 0]
    gone: set[str] = set()
    while peel:
        node = peel.pop()
        if node in gone:
            continue
        gone.add(node)
        for d in dependents[node]:
            needs_left[d] -= 1
            if needs_left[d] == 0 and d not in gone:
                peel.append(d)
        for m in edges[node]:
            if m in needed_left:
                needed_left[m] -= 1
                if needed_left[m] == 0 and m not in gone:
                    peel.append(m)
    return {n for n in edges if n not in gone}


def _components(graph: Mapping[str, list[str]]) -> dict[str, int]:
    """Tarjan's strongly connected components, without recursion: ``name -> component``.

    Each node is entered once and each arrow followed once, so the work grows with the size
    of the flow, and a chain deeper than Python's recursion limit is no different.
    """
    number: dict[str, int] = {}
    low: dict[str, int] = {}
    component: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in graph:
        if root in number:
            continue
        number[root] = low[root] = len(number)
        stack.append(root)
        on_stack.add(root)
        work: list[tuple[str, Iterator[str]]] = [(root, iter(graph[root]))]
        while work:
            node, arrows = work[-1]
            for nxt in arrows:
                if nxt not in number:
                    number[nxt] = low[nxt] = len(number)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph[nxt])))
                    break
                if nxt in on_stack and number[nxt] < low[node]:
                    low[node] = number[nxt]
            else:
                work.pop()
                if low[node] == number[node]:
                    label = number[node]
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component[member] = label
                        if member == node:
                            break
                if work:
                    parent = work[-1][0]
                    if low[node] < low[parent]:
                        low[parent] = low[node]
    return component


def _shortest_cycle(start: str, dependents: Mapping[str, list[str]],
                    component: Mapping[str, int]) -> list[str] | None:
    """Breadth-first from ``start`` back to itself inside its component, neighbours in file
    order (a cycle through ``start`` never leaves its component)."""
    own = component[start]
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in dependents[node]:
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if nxt not in parent and component.get(nxt) == own:
                parent[nxt] = node
                queue.append(nxt)
    return None  # pragma: no cover - a component of two or more always has a cycle


def _index(flow: Flow) -> dict[str, int]:
    return {step.name: i for i, step in enumerate(flow.steps)}


def order(flow: Flow) -> list[str]:
    """Step names in an order that respects ``needs``; ties go to the step written first."""
    index = _index(flow)
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for step in flow.steps:
        unknown = [n for n in step.needs if n not in index]
        if unknown:
            raise SpecError.single(flow.source or "<flow>", f"unknown step {unknown[0]!r}",
                                   path=f"steps[{index[step.name]}].needs")
        sorter.add(step.name, *step.needs)
    try:
        sorter.prepare()
    except CycleError:
        cycle = find_cycle({s.name: s.needs for s in flow.steps}) or []
        raise SpecError.single(flow.source or "<flow>", "cycle: " + " -> ".join(cycle),
                               cycle_hint(cycle)) from None
    heap = [(index[name], name) for name in sorter.get_ready()]
    heapq.heapify(heap)
    out: list[str] = []
    while heap:
        _, name = heapq.heappop(heap)
        out.append(name)
        sorter.done(name)
        for ready in sorter.get_ready():
            heapq.heappush(heap, (index[ready], ready))
    return out


def _reach(starts: Iterable[str], graph: Mapping[str, Iterable[str]]) -> set[str]:
    seen: set[str] = set()
    queue = deque(starts)
    while queue:
        for nxt in graph[queue.popleft()]:
            if nxt not in seen and nxt in graph:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def downstream(flow: Flow, names: Iterable[str]) -> set[str]:
    """Every step that needs one of ``names``, directly or through others.

    A name is in the result only if it is itself downstream of another of ``names``.
    Raises KeyError for a name that is not a step.
    """
    dependents = _dependents({s.name: s.needs for s in flow.steps})
    starts = list(names)
    for name in starts:
        if name not in dependents:
            raise KeyError(name)
    return _reach(starts, dependents)


def upstream(flow: Flow, name: str) -> set[str]:
    """Every step ``name`` needs, directly or through others (not ``name`` itself)."""
    needs = {s.name: s.needs for s in flow.steps}
    if name not in needs:
        raise KeyError(name)
    return _reach([name], needs)
