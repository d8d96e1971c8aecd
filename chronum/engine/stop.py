"""Cancelling a run when something outside asks: the runner polls, and cancels the run task.

The run is cancelled as Ctrl-C or the notebook's Stop button cancel it (its steps stopped, the
run recorded ``cancelled``); the difference is that the caller gets a ``cancelled`` outcome
back instead of ``CancelledError``, since nobody cancelled the caller itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from .runner import RunOutcome

__all__ = ["POLL_S", "until_requested"]

logger = logging.getLogger("chronum")

#: Seconds between two looks at whether a cancel was requested.
POLL_S = 0.25


async def until_requested(run: Coroutine[Any, Any, RunOutcome], requested: Callable[[], bool],
                          *, run_id: str, interval: float = POLL_S) -> RunOutcome:
    """Await ``run``; when ``requested()`` turns true, cancel it and return a ``cancelled``
    outcome. Cancelling the caller still cancels the run and raises ``CancelledError``."""
    started = time.time()
    task = asyncio.ensure_future(run)
    asked = False

    async def poll() -> None:
        nonlocal asked
        while not task.done():
            await asyncio.sleep(interval)
            try:
                hit = requested()
            except Exception as exc:  # the run goes on; it just cannot be cancelled this way
                logger.warning("cannot read cancel requests for run %s: %s", run_id, exc)
                return
            if hit and not task.done():
                asked = True
                task.cancel()
                return

    poller = asyncio.ensure_future(poll())
    try:
        return await task
    except asyncio.CancelledError:
        me = asyncio.current_task()
        if not asked or (me is not None and me.cancelling() > 0):
            raise
        return RunOutcome(run_id=run_id, status="cancelled", states={}, outputs={},
                          started_at=started, finished_at=time.time(), errors={})
    finally:
        poller.cancel()
