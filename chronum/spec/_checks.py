"""Typed reads of raw document values that record a Problem instead of raising.

Every check takes the container and the key (or index) being read, so a position and a field
path are computed only when something is wrong: the happy path of a 1,000-step flow stays a
handful of dict lookups per field.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._args import duration_seconds, format_duration
from ..errors import Location, Problem
from ._nodes import Pos, child_pos

__all__ = ["Checker", "describe", "did_you_mean", "field_path"]

#: Suggestions cost a difflib scan; past this many problems the file has bigger trouble.
_MAX_SUGGESTIONS = 100


def describe(value: Any) -> str:
    """How a value reads in an error message: ``a string 'three'``, ``an integer 3``, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"an integer {value}"
    if isinstance(value, float):
        return f"a number {value!r}"
    if isinstance(value, str):
        return f"a string {value if len(value) <= 40 else value[:39] + '…'!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _short(value: Any) -> str:
    """A number as an error shows it: huge integers are not printed whole."""
    text = str(value)
    return text if len(text) <= 24 else text[:20] + "…"


def _norm(word: str) -> str:
    return word.replace("_", "").replace("-", "").lower()


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``did you mean 'x'?`` for the closest choice, or an empty string."""
    options = [c for c in choices if isinstance(c, str)]
    norm = _norm(word)
    for choice in options:
        if _norm(choice) == norm:
            return f"did you mean {choice!r}?"
    import difflib  # only on the error path: a valid flow never needs it

    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def field_path(prefix: str, key: Any) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else str(key)


class Checker:
    """Collects problems for one file; each ``read_*`` returns None when the value is bad."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self._suggestions = 0

    def add(self, pos: Pos, path: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(Location(self.file, pos[0], pos[1], path), message, hint))

    def at(self, container: Any, key: Any, prefix: str, fb: Pos, message: str,
           hint: str = "", *, of_key: bool = False) -> None:
        """A problem with ``container[key]`` (or with the key itself when ``of_key``)."""
        pos = child_pos(container, key, fb, of_key=of_key)
        self.add(pos, prefix if of_key else field_path(prefix, key), message, hint)

    def suggest(self, word: str, choices: Iterable[str]) -> str:
        self._suggestions += 1
        return did_you_mean(word, choices) if self._suggestions <= _MAX_SUGGESTIONS else ""

    def keys(self, m: Mapping[Any, Any], prefix: str, fb: Pos, allowed: Iterable[str],
             hint: Callable[[str], str] | None = None) -> None:
        """Report every key of ``m`` that is not in ``allowed``; ``hint`` may explain one."""
        known = allowed if isinstance(allowed, frozenset | set) else frozenset(allowed)
        for key in m:
            if key in known:
                continue
            if isinstance(key, str):
                why = (hint(key) if hint else "") or self.suggest(key, known)
                self.at(m, key, prefix, fb, f"unknown key {key!r}", why, of_key=True)
            else:
                self.at(m, key, prefix, fb, f"expected a string key, got {describe(key)}",
                        of_key=True)

    def mapping(self, c: Any, key: Any, prefix: str, fb: Pos, what: str = "a mapping"
                ) -> Mapping[Any, Any] | None:
        value = c[key]
        if isinstance(value, Mapping):
            return value
        self.at(c, key, prefix, fb, f"expected {what}, got {describe(value)}")
        return None

    def text(self, c: Any, key: Any, prefix: str, fb: Pos) -> str | None:
        value = c[key]
        if isinstance(value, str):
            if "\0" not in value:
                return value
            self.at(c, key, prefix, fb, "a NUL character is not allowed here")
            return None
        hint = ""
        if isinstance(value, int | float) and not isinstance(value, bool):
            hint = f'quote it: "{value}"'
        self.at(c, key, prefix, fb, f"expected a string, got {describe(value)}", hint)
        return None

    def boolean(self, c: Any, key: Any, prefix: str, fb: Pos) -> bool | None:
        value = c[key]
        if isinstance(value, bool):
            return value
        self.at(c, key, prefix, fb, f"expected true or false, got {describe(value)}")
        return None

    def integer(self, c: Any, key: Any, prefix: str, fb: Pos, minimum: int,
                maximum: int | None = None) -> int | None:
        value = c[key]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            self.at(c, key, prefix, fb, f"expected an integer, got {describe(value)}")
            return None
        if value < minimum:
            self.at(c, key, prefix, fb, f"must be at least {minimum}, got {value}")
            return None
        if maximum is not None and value > maximum:
            self.at(c, key, prefix, fb, f"must be at most {maximum:,}, got {_short(value)}")
            return None
        return value

    def number(self, c: Any, key: Any, prefix: str, fb: Pos, minimum: float,
               *, exclusive: bool = False, maximum: float | None = None) -> float | None:
        value = c[key]
        if not isinstance(value, int | float) or isinstance(value, bool):
            self.at(c, key, prefix, fb, f"expected a number, got {describe(value)}")
            return None
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer too large for a float
            finite = False
        if not finite:
            self.at(c, key, prefix, fb, f"expected a finite number, got {_short(value)}")
            return None
        if value < minimum or (exclusive and value == minimum):
            limit = "greater than" if exclusive else "at least"
            self.at(c, key, prefix, fb, f"must be {limit} {minimum:g}, got {value:g}")
            return None
        if maximum is not None and value > maximum:
            self.at(c, key, prefix, fb, f"must be at most {maximum:,g}, got {value:g}")
            return None
        return float(value)

    def duration(self, c: Any, key: Any, prefix: str, fb: Pos, maximum: float
                 ) -> float | None:
        """Seconds above zero: a number, or a duration text (``90s``, ``10m``, ``1h30m``) as
        ``cacheFor`` and ``chronum history --older-than`` read it."""
        value = c[key]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return self.number(c, key, prefix, fb, 0, exclusive=True, maximum=maximum)
        seconds = duration_seconds(value)
        if seconds is None or math.isnan(seconds):
            self.at(c, key, prefix, fb, f"expected seconds or a duration, got "
                    f"{describe(value)}", "write a number of seconds or a duration like "
                    "90s, 10m, 2h or 1h30m")
            return None
        text = str(value).strip()
        if seconds <= 0:
            self.at(c, key, prefix, fb, f"must be greater than 0, got {text}")
            return None
        if seconds > maximum:
            self.at(c, key, prefix, fb, f"must be at most {format_duration(maximum)}, got "
                    f"{text}")
            return None
        return seconds

    def choice(self, c: Any, key: Any, prefix: str, fb: Pos, choices: tuple[str, ...]
               ) -> str | None:
        value = c[key]
        if isinstance(value, str) and value in choices:
            return value
        listed = ", ".join(repr(x) for x in choices)
        hint = self.suggest(value, choices) if isinstance(value, str) else ""
        self.at(c, key, prefix, fb, f"expected one of {listed}, got {describe(value)}", hint)
        return None

    def str_map(self, c: Any, key: Any, prefix: str, fb: Pos) -> dict[str, str] | None:
        """``env`` and ``params``: string keys; strings, numbers and booleans as values."""
        m = self.mapping(c, key, prefix, fb)
        if m is None:
            return None
        path = field_path(prefix, key)
        mpos = child_pos(c, key, fb)
        out: dict[str, str] = {}
        for name, value in m.items():
            if not isinstance(name, str) or not name or "=" in name or "\0" in name:
                self.at(m, name, path, mpos, f"invalid name {describe(name)}",
                        "names are non-empty strings without '='", of_key=True)
            elif isinstance(value, str):
                if "\0" in value:
                    self.at(m, name, path, mpos, "a NUL character is not allowed here")
                out[name] = value
            elif isinstance(value, bool):
                out[name] = "true" if value else "false"
            elif isinstance(value, int | float):
                out[name] = str(value)
            else:
                hint = 'use "" for an empty value' if value is None else ""
                self.at(m, name, path, mpos,
                        f"expected a string, number or boolean, got {describe(value)}", hint)
        return out
