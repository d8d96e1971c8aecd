"""Argument types shared by the front ends (``-p name=value``) and durations: ``90s``, ``10m``,
``2h`` read by the CLI, the magics and the flow validator, and written back the same way by the
engine's "timed out after 10m" and the pictures."""

from __future__ import annotations

import argparse

__all__ = ["duration_seconds", "format_duration", "name_value", "parse_duration"]


def name_value(text: str) -> tuple[str, str]:
    """``-p region=eu`` as ``("region", "eu")``; the value may itself contain ``=``."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected name=value, got {text!r}")
    return name, value


_DURATION = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: object) -> float | None:
    """``90``, ``"90s"``, ``"30m"``, ``"6h"``, ``"7d"``, ``"1w"`` (or several, ``"1h30m"``) as
    seconds; None when ``value`` is not a duration (or not above zero)."""
    seconds = duration_seconds(value)
    if seconds is None or not seconds > 0 or seconds == float("inf"):
        return None
    return seconds


def duration_seconds(value: object) -> float | None:
    """What ``parse_duration`` reads, before it asks for a finite value above zero (so a
    validator can say "must be greater than 0" of ``0s``); None when it is no duration."""
    import re

    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip().lower().replace(" ", "")
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw])", text)
    if parts and "".join(n + u for n, u in parts) == text:
        return sum(float(n) * _DURATION[u] for n, u in parts)
    try:
        return float(text)
    except ValueError:
        return None


def format_duration(seconds: float) -> str:
    """``7200`` -> ``2h``, ``90`` -> ``90s``, ``600`` -> ``10m``, ``0.5`` -> ``0.5s``: as a
    person writes it, in the one unit that divides it (``parse_duration`` reads it back)."""
    for unit in ("d", "h", "m"):
        size = _DURATION[unit]
        if seconds >= size and seconds % size == 0:
            return f"{_number(seconds / size)}{unit}"
    return f"{_number(seconds)}s"


def _number(value: float) -> str:
    """``600.0`` -> ``600``, ``0.05`` -> ``0.05``: every digit the value has (``:g`` would
    write 1000001 as 1e+06)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text
