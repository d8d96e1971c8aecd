"""A request to stop a run: written by whoever asks (``chronum serve``'s Cancel button), read
by the run's own runner, which polls it.

A request in the store rather than a signal to the runner's pid: a notebook kernel runs the
user's other cells too, and SIGINT would interrupt whatever the kernel is doing, while the
runner that reads the request cancels exactly its run, the way Ctrl-C or the notebook's Stop
button do. The runner only reads its own row, through the connection it already has.
"""

from __future__ import annotations

import sqlite3
import time

from .core import Store

__all__ = ["is_requested", "request"]


def request(store: Store, run_id: str) -> bool:
    """Ask the runner of ``run_id`` to cancel it; False when the run is not running."""

    def write(conn: sqlite3.Connection) -> bool:
        cursor = conn.execute(
            "UPDATE runs SET cancel_requested = ? WHERE run_id = ? AND status = 'running'",
            (time.time(), run_id))
        return cursor.rowcount > 0

    with store._lock:
        return store._write("ask to cancel a run in", write)


def is_requested(store: Store, run_id: str) -> bool:
    """True once someone asked to cancel ``run_id`` (read without flushing the buffer)."""

    def read(conn: sqlite3.Connection) -> bool:
        row = conn.execute("SELECT cancel_requested FROM runs WHERE run_id = ?",
                           (run_id,)).fetchone()
        return row is not None and row[0] is not None

    with store._lock:
        return store._read(read)
