"""Step functions of the flows built in this process, found again from the built model.

A model ``Flow`` holds ``call: module:function`` strings; the functions themselves (defined in
a notebook, say, where nothing can import them) are kept here, so a run that is handed only the
model (``chronum run pipeline.py``, the notebook's live view, a resume) still calls them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from ..model import Flow

__all__ = ["LOADING", "functions_for", "register"]

#: Files the ``.py`` parser is executing right now: a flow must not run while it is loaded.
LOADING: list[str] = []

_LIMIT = 64
_FUNCTIONS: OrderedDict[tuple[str, str | None], tuple[Flow, Mapping[str, Callable[..., Any]]]]
_FUNCTIONS = OrderedDict()


def register(flow: Flow, functions: Mapping[str, Callable[..., Any]]) -> None:
    key = (flow.name, flow.source)
    _FUNCTIONS[key] = (flow, functions)
    _FUNCTIONS.move_to_end(key)
    while len(_FUNCTIONS) > _LIMIT:
        _FUNCTIONS.popitem(last=False)


def functions_for(flow: Flow) -> Mapping[str, Callable[..., Any]] | None:
    """The functions of ``flow``'s python steps, if it (or an equal flow) was built here."""
    entry = _FUNCTIONS.get((flow.name, flow.source))
    if entry is None:
        return None
    known, functions = entry
    if known is flow or known.steps == flow.steps:
        return functions
    return None
