"""Pausing the cycle collector around bursts of allocation that make no reference cycles."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused"]


@contextmanager
def paused() -> Iterator[None]:
    """Turn the cyclic garbage collector off for the block, then back on if it was on.

    Parsing and validating a flow allocates tens of thousands of short-lived objects (nodes,
    positions, steps) that reference counting frees on its own. Each allocation burst makes
    the collector scan every object of the process: in a Jupyter kernel that has run a few
    cells (over 100,000 objects), those scans cost more than parsing a 1,000-step flow.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
