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
    """The store's bus subscriber: writes are buffered and committed within ``interval``.

    Committing per event would cost more than the steps themselves on a flow of many short
    steps; a short delay keeps the store at most a tick behind. A write error is raised on the
    next event, from the engine's own stack, so the run fails instead of going on unrecorded.
    """

    def __init__(self, store: Store, interval: float = 0.05) -> None:
        self.store = store
        self.interval = interval
        self.error: BaseException | None = None
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, event: Event) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        self.store.record(event)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._flush)

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
