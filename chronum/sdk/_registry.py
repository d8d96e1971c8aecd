"""Files the ``.py`` flow parser is executing right now.

A flow must not start while its file is being loaded: ``chronum run pipeline.py`` imports the
file, and a bare ``flow.run()`` in it would start a second run from inside the first.
"""

from __future__ import annotations

__all__ = ["LOADING"]

LOADING: list[str] = []
