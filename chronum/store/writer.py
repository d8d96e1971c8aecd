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
    """``--events-jsonl``: every event, log lines included, as one JSON object per line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close)

    def __call__(self, event: Event) -> None:
        self.file.write(json.dumps(event.to_dict(), default=str) + "\n")

    def close(self) -> None:
        self.file.close()
