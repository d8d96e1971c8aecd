"""Ordering and reachability on a flow's ``needs`` graph, built on ``graphlib``.

Pure functions of a ``chronum.model.Flow`` (or of a plain ``name -> needs`` mapping): nothing
here depends on hashing order, only on the order steps are written in the file. Arrows in a
cycle follow the direction work flows, as in graphlib's ``CycleError`` and in the rendered
graph: ``a -> b`` means ``b`` needs ``a``.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from graphlib import CycleError, TopologicalSorter

from .errors import SpecError
from .model import Flow

__all__ = ["downstream", "find_cycle", "order", "upstream"]


def _dependents(edges: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """``name -> steps that need it``, each list in file order; unknown needs are dropped."""
    out: dict[str, list[str]] = {name: [] for name in edges}
    for name, needs in edges.items():
        for need in dict.fromkeys(needs):
            if need in out:
                out[need].append(name)
    return out


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle in ``edges`` (step -> the steps it needs, in file order), or None.

    The cycle is returned as a closed path ``[a, b, c, a]`` (``b`` needs ``a``, ...). It is the
    shortest cycle through the first step, in file order, that lies on any cycle, and starts
    there, so the same file always reports the same cycle.
    """
    edges = {name: list(needs) for name, needs in edges.items()}
    index = {name: i for i, name in enumerate(edges)}
    if all(index.get(need, -1) < i for i, needs in enumerate(edges.values()) for need in needs):
        return None  # every step needs only steps written before it: no cycle possible
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for name, needs in edges.items():
        sorter.add(name, *(n for n in needs if n in edges))
    try:
        sorter.prepare()
        return None
    except CycleError:
        pass
    # Drain what can be ordered; what is left is on a cycle or downstream of one.
    ordered: set[str] = set()
    while ready := sorter.get_ready():
        sorter.done(*ready)
        ordered.update(ready)
    dependents = _dependents(edges)
    stuck = [name for name in edges if name not in ordered]
    for start in stuck:
        path = _shortest_cycle(start, dependents, ordered)
        if path is not None:
            return path
    raise AssertionError("graphlib found a cycle that a search did not")  # pragma: no cover


def _shortest_cycle(start: str, dependents: Mapping[str, list[str]], ordered: set[str]
                    ) -> list[str] | None:
    """Breadth-first from ``start`` back to itself, neighbours in file order."""
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
            if nxt not in parent and nxt not in ordered:
                parent[nxt] = node
                queue.append(nxt)
    return None


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
        raise SpecError.single(flow.source or "<flow>", "cycle: " + " -> ".join(cycle)
                               ) from None
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
