"""Argument types shared by the two front ends that parse ``-p name=value`` (CLI and magics)."""

from __future__ import annotations

import argparse

__all__ = ["name_value", "parse_duration"]


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
    import re

    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw])", text)
        if not parts or "".join(n + u for n, u in parts) != text:
            try:
                seconds = float(text)
            except ValueError:
                return None
        else:
            seconds = sum(float(n) * _DURATION[u] for n, u in parts)
    else:
        return None
    if not seconds > 0 or seconds == float("inf"):
        return None
    return seconds
