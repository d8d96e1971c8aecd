"""What Chronum remembers in one IPython shell: one object, bound to that shell.

A ``%%chronum`` cell's flow has no file to reload, background runs are waited for later, and a
run's picture must not be shown twice; all of it belongs to the shell the cells ran in (a test
or an embedding application may have several), so it lives on a ``KernelState`` found with
``state_of(shell)``, never in module globals.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._lru import LRU
from ..model import Flow

if TYPE_CHECKING:
    from .cell import RunHandle
    from .view import LiveView

__all__ = ["KernelState", "Settings", "current", "settings", "state_of"]


def _flows() -> LRU[str, Flow]:
    return LRU(64)


def _views() -> LRU[str, LiveView]:
    return LRU(8)


@dataclass
class Settings:
    """What ``%config ChronumMagics`` sets (the magics object stands in for this once the
    extension is loaded: the same attribute names, as traitlets)."""

    db: str | None = None
    max_parallel: int | None = None
    show_after: float = 0.25
    timeline: bool = False


@dataclass
class KernelState:
    """Chronum's memory in one shell."""

    #: Flows of the runs started from cells, by run id (a cell flow has no file to reload).
    flows: LRU[str, Flow] = field(default_factory=_flows)
    #: Background runs, newest last, for ``%chronum wait``.
    handles: list[RunHandle] = field(default_factory=list)
    #: Live views of recent runs by run id (benchmarks and browser tests read their times).
    views: LRU[str, LiveView] = field(default_factory=_views)
    #: The flow of the last ``%%chronum`` cell, for ``%chronum graph``.
    last_flow: Flow | None = None
    #: Objects whose picture their cell already shows: id -> execution count.
    shown: dict[int, int] = field(default_factory=dict)
    #: ``%config ChronumMagics`` settings: the ``ChronumMagics`` object once loaded.
    settings: Any = field(default_factory=Settings)


_STATES: weakref.WeakKeyDictionary[Any, KernelState] = weakref.WeakKeyDictionary()
#: Used where no shell exists (a magic called from plain Python): nothing outlives the process.
_NO_SHELL = KernelState()


def state_of(shell: Any) -> KernelState:
    """The state bound to ``shell`` (made on first use)."""
    if shell is None:
        return _NO_SHELL
    state = _STATES.get(shell)
    if state is None:
        state = _STATES[shell] = KernelState()
    return state


def current() -> KernelState:
    """The state of the running IPython shell."""
    from IPython import get_ipython

    return state_of(get_ipython())


def settings() -> Settings:
    """The running shell's ``%config ChronumMagics`` settings."""
    return current().settings  # type: ignore[no-any-return]
