"""What Chronum remembers in one IPython shell: one object, bound to that shell.

A ``%%chronum`` cell's flow has no file to reload, background runs are waited for later, and a
run's picture must not be shown twice; all of it belongs to the shell the cells ran in (a test
or an embedding application may have several), so it lives on a ``KernelState`` found with
``state_of(shell)``, never in module globals.

Nothing a run started outlives its kernel: the first state made for a shell with a kernel
hooks the kernel's shutdown (a restart, or a shutdown from the page), which cancels every run
going on in this process as Cancel does (process trees, containers, dask futures) and records
it ``cancelled`` with the reason "kernel shut down"; its cell's live view is replaced by the
final picture before the kernel exits. An ``atexit`` hook does the same where the shutdown
came another way (``exit()``, SIGTERM). A kernel killed outright (SIGKILL) runs nothing: the
process supervisor (``executors/containment.py``) and the resume rule (``%chronum resume``
stops what the dead run left before it starts a step again) cover that case.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import inspect
import threading
import time
import weakref
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._lru import LRU
from ..model import Flow

if TYPE_CHECKING:
    from .cell import RunHandle
    from .view import LiveView

__all__ = ["SHUTDOWN_REASON", "KernelState", "Settings", "current", "install_shutdown",
           "settings", "state_of", "stop_runs"]

#: The reason the steps of a run stopped by a kernel shutdown are recorded with.
SHUTDOWN_REASON = "kernel shut down"
#: Seconds a shutdown waits for the runs to stop. A kernel manager kills a kernel that takes
#: longer than its ``shutdown_wait_time`` (5 s by default); what is left then is the
#: supervisor's and the resume rule's.
SHUTDOWN_WAIT = 4.0
#: A run cancelled this many seconds before the kernel was asked to shut down was cancelled by
#: the interrupt that a kernel manager sends first (see ``_amend_interrupted``).
INTERRUPT_WINDOW = 2.0


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
        install_shutdown(shell)
        kernel = getattr(shell, "kernel", None)
        if kernel is not None:
            from .. import api

            api.view_runner = _run_with_view
            _register_comm(kernel)
    return state


def _register_comm(kernel: Any) -> None:
    """The Cancel button's comm target (``view.on_comm_open``)."""
    from .view import COMM_TARGET, on_comm_open

    manager = getattr(kernel, "comm_manager", None)
    if manager is not None:
        manager.register_target(COMM_TARGET, on_comm_open)


def current() -> KernelState:
    """The state of the running IPython shell."""
    from IPython import get_ipython

    return state_of(get_ipython())


# -- a kernel that shuts down stops its runs first ------------------------------------------


def _cancel_all(reason: str) -> dict[str, asyncio.Task[Any]]:
    """Cancel every run going on in this process with ``reason``, each on its own loop's
    thread; the runs cancelled. A run whose loop is not running (the kernel stopped it, at
    exit) is stopped here by running that loop until the run has ended."""
    from ..session import active_runs

    cancelled = {}
    for run_id, task in active_runs().items():
        loop = task.get_loop()
        if task.done() or loop.is_closed():
            continue
        cancelled[run_id] = task
        if loop.is_running():  # the kernel's loop, or a blocking call's private one
            loop.call_soon_threadsafe(task.cancel, reason)
        else:
            task.cancel(reason)
            with contextlib.suppress(RuntimeError):
                loop.run_until_complete(asyncio.wait([task], timeout=SHUTDOWN_WAIT))
    return cancelled


def _still_going(shell: Any, run_ids: Collection[str]) -> bool:
    """Whether one of ``run_ids`` still runs, or its cell has not shown its final picture.

    Read from the control thread without the kernel's loop: that loop may be busy (showing
    the interrupted cell's traceback) for longer than the shutdown may take."""
    from ..session import active_runs

    if not run_ids:
        return False
    if set(run_ids) & active_runs().keys():
        return True
    views = state_of(shell).views if shell is not None else {}
    return any(not view.finished for rid, view in list(views.items()) if rid in run_ids)


def _amend_interrupted(since: float) -> None:
    """A kernel manager interrupts a kernel before it asks it to shut down (jupyter_client
    does, for a restart from the page too): the cell's run was cancelled by that interrupt, as
    by the Stop button, a moment before the shutdown said why. Its steps get the reason."""
    from ..session import ended_runs
    from ..store import Store

    for run_id, db in ended_runs(since):
        with contextlib.suppress(Exception), Store(db) as store:
            if store.run(run_id)["status"] == "cancelled":
                store.amend_cancelled(run_id, SHUTDOWN_REASON)


def _flush_output() -> None:
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def stop_runs(reason: str = SHUTDOWN_REASON, timeout: float = SHUTDOWN_WAIT) -> None:
    """Cancel every run going on in this process and wait (up to ``timeout`` seconds) until
    their steps are stopped and the runs recorded ``cancelled`` with ``reason``.

    For a thread that is not running a loop of these runs (atexit, the control thread)."""
    cancelled = _cancel_all(reason)
    deadline = time.monotonic() + timeout
    while _still_going(None, cancelled) and time.monotonic() < deadline:
        time.sleep(0.02)


_hooked: weakref.WeakSet[Any] = weakref.WeakSet()
_at_exit_registered = threading.Event()


def install_shutdown(shell: Any) -> None:
    """Stop this process's runs when ``shell``'s kernel shuts down (once per kernel).

    ipykernel has no shutdown event: its ``do_shutdown`` (run on the control thread when a
    restart or shutdown is requested) is wrapped on this kernel object only."""
    kernel = getattr(shell, "kernel", None)
    if kernel is not None and kernel not in _hooked and hasattr(kernel, "do_shutdown"):
        _hooked.add(kernel)
        original: Callable[[bool], Any] = kernel.do_shutdown
        shell_ref = weakref.ref(shell)

        async def do_shutdown(restart: bool) -> Any:
            asked = time.monotonic()
            cancelled = _cancel_all(SHUTDOWN_REASON)
            deadline = asked + SHUTDOWN_WAIT
            # Also the runs an interrupt just before cancelled: their cells finish now.
            going = {*cancelled, *(rid for rid, _db in _ended_since(asked - INTERRUPT_WINDOW))}
            while _still_going(shell_ref(), going) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            _flush_output()
            _amend_interrupted(asked - INTERRUPT_WINDOW)
            result = original(restart)
            return await result if inspect.isawaitable(result) else result

        kernel.do_shutdown = do_shutdown
    if not _at_exit_registered.is_set():
        _at_exit_registered.set()
        atexit.register(stop_runs)


def _ended_since(since: float) -> list[tuple[str, Any]]:
    from ..session import ended_runs

    return ended_runs(since)


def settings() -> Settings:
    """The running shell's ``%config ChronumMagics`` settings."""
    return current().settings  # type: ignore[no-any-return]


async def _run_with_view(flow: Any, options: Any) -> Any:
    """``chronum.run(...)`` in a cell (``api.view_runner``): the run with the live view of
    ``%%chronum``, on the private loop that ``api.blocking`` runs it on."""
    from dataclasses import replace

    from .. import api
    from .cell import run_with_view

    definition = flow if isinstance(flow, api.FlowBuilder) else None
    if definition is not None:
        model = definition.build()
    elif isinstance(flow, Flow):
        model = flow
    else:
        model = api.load(flow, params=options.params)
        options = replace(options, params=None)
    run = await run_with_view(model, options, time.monotonic())
    assert isinstance(run, api.Run)  # not a background handle: background is off
    run.definition = definition
    return run
