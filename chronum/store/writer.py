"""The bus subscribers that write a run down: the store's own, and ``--events-jsonl``."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
from typing import IO

from ..errors import UsageError
from ..eventbus import Event
from .core import Store

__all__ = ["JsonLinesWriter", "StoreWriter"]

logger = logging.getLogger("chronum")


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
    """``--events-jsonl``: every event, log lines included, as one JSON object per line.

    An observer, not the record: when it cannot write (a full disk), the bus reports it once
    by its ``label`` and detaches it, and the run goes on. Closing reports a failure the bus
    has not reported already, and never raises, so the run's outcome and exit code stand.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        #: How reports name this observer (``chronum.eventbus`` uses it).
        self.label = f"the events file {self.path}"
        self.failed = False
        try:
            self.file: IO[str] = open(  # noqa: SIM115 (closed in close)
                self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {self.label}: {_why(exc)}"
                             f"{_hint(self.path, exc)}") from None

    def __call__(self, event: Event) -> None:
        try:
            self.file.write(json.dumps(event.to_dict(), default=str) + "\n")
        except BaseException:
            self.failed = True
            raise

    def close(self) -> None:
        try:
            self.file.close()
        except OSError as exc:
            if not self.failed:
                self.failed = True
                logger.warning("%s: %s; its last events are missing, the run's outcome stands",
                               self.label, _why(exc))


def _why(exc: OSError) -> str:
    """An OSError in words, without Python's ``[Errno 28]``."""
    if exc.errno == errno.ENOSPC:
        return "disk full"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded"
    return exc.strerror.lower() if exc.strerror else str(exc)


def _hint(path: str, exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return f"; create the folder {os.path.dirname(os.path.abspath(path))} first"
    if exc.errno == errno.EISDIR:
        return "; give a file name, not a folder"
    return ""
