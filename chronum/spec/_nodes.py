"""Positioned containers: plain ``dict`` and ``list`` that also remember where they were written.

The YAML parser returns these so the validator can point at ``file:line:col``; a third-party
parser may return plain dicts and lists instead, and the validator then falls back to the
nearest position it knows. Keeping them real dicts and lists means one validator for both.
Positions are 1-based ``(line, col)`` pairs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Pos", "YList", "YMap", "child_pos", "pos_of"]

Pos = tuple[int, int]


class YMap(dict[Any, Any]):
    """A mapping with its own position and, per key, the positions of the key and the value."""

    __slots__ = ("col", "line", "marks")

    def __init__(self, line: int, col: int) -> None:
        super().__init__()
        self.line = line
        self.col = col
        #: key -> (key line, key col, value line, value col)
        self.marks: dict[Any, tuple[int, int, int, int]] = {}


class YList(list[Any]):
    """A sequence with its own position and the position of each item."""

    __slots__ = ("col", "line", "marks")

    def __init__(self, line: int, col: int) -> None:
        super().__init__()
        self.line = line
        self.col = col
        self.marks: list[Pos] = []


def pos_of(value: Any, fallback: Pos) -> Pos:
    """Where a container starts, or ``fallback`` for containers without positions."""
    line = getattr(value, "line", None)
    if isinstance(line, int) and line > 0:
        return line, value.col
    return fallback


def child_pos(container: Any, key: Any, fallback: Pos, *, of_key: bool = False) -> Pos:
    """Where ``container[key]`` (or the key itself) is written, or the container's position."""
    marks = getattr(container, "marks", None)
    if marks is not None:
        if isinstance(container, YMap):
            m = marks.get(key)
            if m is not None:
                return (m[0], m[1]) if of_key else (m[2], m[3])
        elif isinstance(container, YList) and 0 <= key < len(marks):
            item: Pos = marks[key]
            return item
    return pos_of(container, fallback)
