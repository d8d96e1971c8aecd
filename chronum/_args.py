"""Argument types shared by the two front ends that parse ``-p name=value`` (CLI and magics)."""

from __future__ import annotations

import argparse

__all__ = ["name_value"]


def name_value(text: str) -> tuple[str, str]:
    """``-p region=eu`` as ``("region", "eu")``; the value may itself contain ``=``."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected name=value, got {text!r}")
    return name, value
