"""Following the store from outside: every event any process records, as it is committed.

The runner needs no part in it. A connection of our own asks SQLite ``PRAGMA data_version``,
which changes when another connection commits, and only then reads the events past the last
one seen. Events are read by ``rowid``: the table is not ``WITHOUT ROWID``, each commit
appends under the write lock, so rowids only grow and one range scan finds every new event
of every run.

Log lines are not events in the store (they go to files): the log endpoint reads those.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from .._lru import LRU
from ..store.schema import connect

__all__ = ["Follower", "Listener"]

logger = logging.getLogger("chronum")

#: What a listener gets, once per poll that found any: each new event as ``--events-jsonl``
#: writes it, plus its ``seq`` in the run, with the same as JSON text (encoded once, whatever
#: the number of listeners).
Listener = Callable[[list[tuple[dict[str, Any], str]]], None]

#: Events read per query; a backlog is read in several.
BATCH = 2000


class Follower:
    """Polls ``data_version`` every ``interval`` seconds and hands new events to listeners."""

    def __init__(self, path: str, interval: float = 0.05) -> None:
        self.path = path
        self.interval = interval
        self._conn: sqlite3.Connection = connect(path)
        self._listeners: list[Listener] = []
        self._flows: LRU[str, str] = LRU(4096)
        self._version = -1
        row = self._conn.execute("SELECT MAX(rowid) FROM events").fetchone()
        #: The rowid of the last event handed out.
        self.last = int(row[0] or 0)

    def add(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    def flow_of(self, run_id: str) -> str | None:
        flow = self._flows.get(run_id)
        if flow is None:
            row = self._conn.execute("SELECT flow FROM runs WHERE run_id = ?",
                                     (run_id,)).fetchone()
            if row is None:
                return None
            flow = self._flows[run_id] = str(row[0])
        return flow

    def poll(self) -> list[dict[str, Any]]:
        """The events committed since the last call (none when nothing was committed)."""
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._version:
            return []
        self._version = version
        found: list[dict[str, Any]] = []
        while True:
            rows = self._conn.execute(
                "SELECT rowid, run_id, seq, at, kind, step, attempt, data FROM events "
                "WHERE rowid > ? ORDER BY rowid LIMIT ?", (self.last, BATCH)).fetchall()
            for rowid, run_id, seq, at, kind, step, attempt, data in rows:
                self.last = rowid
                found.append({"kind": kind, "run_id": run_id, "at": at, "step": step,
                              "attempt": attempt, "data": json.loads(data), "seq": seq})
            if len(rows) < BATCH:
                return found

    def dispatch(self, events: list[dict[str, Any]]) -> None:
        listeners = tuple(self._listeners)
        if not listeners:
            return
        batch = [(event, json.dumps(event, separators=(",", ":"))) for event in events]
        for listener in listeners:
            listener(batch)

    async def run(self) -> None:
        """Poll until cancelled; a read that fails (the file locked for long) is retried."""
        warned = False
        while True:
            try:
                events = self.poll()
                warned = False
            except sqlite3.Error as exc:
                if not warned:
                    logger.warning("cannot follow the store %s: %s; retrying", self.path, exc)
                    warned = True
                events = []
            if events:
                self.dispatch(events)
            await asyncio.sleep(self.interval)

    def close(self) -> None:
        self._conn.close()
