"""The instances of a fan-out step as pictures show them: one group, never one row or node each.

A fan-out step of 10,000 items is one node of the graph, with a counter and a small bar, and
one row of the step table, with its instances folded under it (an HTML ``<details>``: the rows
worth looking at, failed and running ones first, at most ``ROWS``). A ``Group`` keeps the
instances' states and the counts per state as they change, so a picture costs the same for
ten instances and for ten thousand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["ROWS", "Group", "groups_from_rows"]

#: Instance rows listed under a fan-out step's row.
ROWS = 40
_SYMBOLS = {"succeeded": "✓", "failed": "✗", "cached": "↺", "skipped": "–",
            "cancelled": "⊘", "running": "▶", "retrying": "↻"}
_DONE = frozenset({"succeeded", "failed", "cached", "skipped", "cancelled", "upstream_failed"})
#: The order instance rows are listed in: what needs a look first.
_FIRST = ("failed", "retrying", "running", "cancelled", "skipped")


class Group:
    """One fan-out step's instances: their states (in item order) and counts per state."""

    __slots__ = ("counts", "name", "states")

    def __init__(self, name: str, instances: Iterable[str] = ()) -> None:
        self.name = name
        self.states: dict[str, str] = dict.fromkeys(instances, "pending")
        self.counts: dict[str, int] = {"pending": len(self.states)} if self.states else {}

    def set(self, instance: str, status: str) -> None:
        before = self.states.get(instance)
        if before == status:
            return
        counts = self.counts
        if before is not None:
            counts[before] -= 1
        counts[status] = counts.get(status, 0) + 1
        self.states[instance] = status

    @property
    def total(self) -> int:
        return len(self.states)

    @property
    def done(self) -> int:
        return sum(n for status, n in self.counts.items() if status in _DONE)

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0)

    def summary(self) -> str:
        """``37/100 ✓35 ✗2``: ended of all, then each state that has instances."""
        parts = [f"{self.done}/{self.total}"]
        for status in ("succeeded", "failed", "cached", "running", "retrying", "skipped",
                       "cancelled"):
            n = self.counts.get(status, 0)
            if n or status in ("succeeded", "failed"):
                parts.append(f"{_SYMBOLS[status]}{n}")
        return " ".join(parts)

    def rows(self, limit: int = ROWS) -> tuple[list[str], int]:
        """The instances worth listing (failed, retrying, running, cancelled, skipped, in
        item order within each), at most ``limit``; and how many were left out."""
        rank = {status: i for i, status in enumerate(_FIRST)}
        worth = [(rank[s], i, name) for i, (name, s) in enumerate(self.states.items())
                 if s in rank]
        worth.sort()
        shown = [name for _, _, name in worth[:limit]]
        if len(shown) < limit:  # room left: the first of the others, in item order
            extra = [n for n, s in self.states.items() if s not in rank][:limit - len(shown)]
            shown.extend(extra)
        return shown, self.total - len(shown)


def groups_from_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, Group]:
    """Groups from stored step rows: an instance row has an ``item``; its step's name is
    the part of its own before ``[``."""
    groups: dict[str, Group] = {}
    for row in rows:
        if row.get("item") is None:
            continue
        name = row["step"]
        parent = name.partition("[")[0]
        group = groups.get(parent)
        if group is None:
            group = groups[parent] = Group(parent)
        group.set(name, row["status"])
    return groups
