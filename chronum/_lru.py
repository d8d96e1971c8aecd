"""A dict that keeps only its most recently used entries.

Chronum remembers a few things per process (laid-out graphs, flows of notebook cells, values of
recent runs) so that doing the same thing again is quick; each such memory must stay bounded in
a kernel that runs for days.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

__all__ = ["LRU"]

K = TypeVar("K")
V = TypeVar("V")


class LRU(OrderedDict[K, V]):
    """At most ``limit`` entries: setting a key past the limit drops the least recently used.

    Reading with ``lookup`` counts as a use; plain ``[]`` and ``get`` do not, so iterating or
    peeking never reorders.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"an LRU keeps at least one entry, got limit={limit}")
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)

    def lookup(self, key: K) -> V | None:
        """The value of ``key`` (marked as just used), or None."""
        if key not in self:
            return None
        self.move_to_end(key)
        return self[key]
