"""The bus subscribers that write a run down: the store's own, and ``--events-jsonl``."""

from __future__ import annotations

import asyncio
import json
import os
from typing import IO

from ..eventbus import Event
from .core import Store

__all__ = ["JsonLinesWriter", "StoreWriter"]


class StoreWriter:
    """The store's bus subscriber: writes are buffered, and committed either at a durability
    barrier or within ``interval``.

    The engine awaits ``barrier()`` after a step's attempt is announced and before its process
    or call starts. Everything recorded until then is committed first: the attempt itself, and
    the final state of every step whose release let this one start, so after a crash the store
    never lacks a success that a dependent acted on. The waiters of one loop turn share one
    commit, so steps finishing together cost one transaction. Events nothing waits on (log
    lines, the end of a step no one needs) stay buffered and are committed within ``interval``
    or at ``close``. A write error is raised to the waiters, or on the next event, from the
    engine's own stack, so the run fails instead of going on unrecorded.
    """

    def __init__(self, store: Store, interval: float = 0.05) -> None:
        self.store = store
        self.interval = interval
        self.error: BaseException | None = None
        self._timer: asyncio.TimerHandle | None = None
        #: One future per waiter of the commit that is due (its own, so cancelling one waiter
        #: never cancels the commit the others wait for).
        self._waiters: list[asyncio.Future[None]] = []

    def __call__(self, event: Event) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        self.store.record(event)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._flush)

    def barrier(self) -> asyncio.Future[None]:
        """A future done once everything recorded so far is committed."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        if not self._waiters:
            loop.call_soon(self._commit)
        self._waiters.append(waiter)
        return waiter

    def _commit(self) -> None:
        waiters, self._waiters = self._waiters, []
        try:
            self.store.flush()
        except Exception as exc:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _flush(self) -> None:
        self._timer = None
        try:
            self.store.flush()
        except Exception as exc:
            self.error = exc

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.store.flush()


class JsonLinesWriter:
    """``--events-jsonl``: every event, log lines included, as one JSON object per line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close)

    def __call__(self, event: Event) -> None:
        self.file.write(json.dumps(event.to_dict(), default=str) + "\n")

    def close(self) -> None:
        self.file.close()
