"""The cache's rows: step keys and their parts, input hashes, and the values cached steps kept.

``chronum.engine.cache`` computes keys and ``chronum.engine.plan`` decides what is reused; this
module only reads and writes what they need, in a few statements per run (one query for every
key of a run, not one per step).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from .core import Store
from .values import values_dir

__all__ = ["Hit", "InputHashes", "cache_entries", "clear_values", "gone_values", "hits",
           "latest_parts",
           "latest_results", "parent_keys", "record_keys", "record_values"]

#: SQLite's limit on ``?`` in one statement is 32,766 nowadays; stay far below it.
_CHUNK = 500


class Hit(NamedTuple):
    """An earlier succeeded step with a given key."""

    run_id: str
    step: str
    finished_at: float | None
    outputs: Mapping[str, str | None]
    #: The step returned None: nothing to load (none was kept on disk).
    value_none: bool = False


class InputHashes:
    """``engine.cache.InputMemo`` backed by the store: hashes of files by (path, size,
    mtime_ns, inode), read at once and written in one transaction by ``save``.

    A file changed within the same clock tick as its hashing could keep its size and mtime;
    like git's "racily clean" entries, a hash is remembered only for a file whose mtime is
    older than ``RACY_S``, so such a file is hashed again next time."""

    RACY_S = 2.0

    def __init__(self, store: Store) -> None:
        self.store = store
        self._new: list[tuple[str, int, int, int, str]] = []

    def get(self, path: str, size: int, mtime_ns: int, inode: int) -> str | None:
        def read(conn: sqlite3.Connection, *args: Any) -> str | None:
            row = conn.execute("SELECT digest FROM input_hashes WHERE path = ? AND size = ? "
                               "AND mtime_ns = ? AND inode = ?", args).fetchone()
            return None if row is None else str(row[0])

        return self.store._query(read, path, size, mtime_ns, inode)

    def put(self, path: str, size: int, mtime_ns: int, inode: int, digest: str) -> None:
        if time.time() - mtime_ns / 1e9 >= self.RACY_S:
            self._new.append((path, size, mtime_ns, inode, digest))

    def save(self) -> None:
        rows, self._new = self._new, []
        if rows:
            self.store._write("remember input hashes in", lambda conn: conn.executemany(
                "INSERT OR REPLACE INTO input_hashes (path, size, mtime_ns, inode, digest) "
                "VALUES (?, ?, ?, ?, ?)", rows))


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


def hits(store: Store, keys: Mapping[str, str]) -> dict[str, list[Hit]]:
    """For each step (name -> its key now): earlier succeeded steps with the same key, the
    same step first, then the newest."""
    by_key: dict[str, list[str]] = {}
    for step, key in keys.items():
        by_key.setdefault(key, []).append(step)

    def read(conn: sqlite3.Connection) -> list[Any]:
        rows: list[Any] = []
        for chunk in _chunks(sorted(by_key)):
            marks = ",".join("?" * len(chunk))
            rows += conn.execute(
                "SELECT k.cache_key, k.run_id, k.step, s.finished_at, k.outputs, k.value_none "
                "FROM step_keys k JOIN steps s ON s.run_id = k.run_id AND s.step = k.step "
                f"WHERE k.cache_key IN ({marks}) AND s.status = 'succeeded'", chunk).fetchall()
        return rows

    found: dict[str, list[Hit]] = {}
    for key, run_id, step, finished, outputs, none in store._query(read):
        hit = Hit(run_id, step, finished, json.loads(outputs) if outputs else {}, bool(none))
        for name in by_key.get(key, ()):
            found.setdefault(name, []).append(hit)
    for name, listed in found.items():
        def order(hit: Hit, name: str = name) -> tuple[bool, float]:
            return hit.step != name, -(hit.finished_at or 0.0)

        listed.sort(key=order)
    return found


def latest_parts(store: Store, flow: str) -> dict[str, tuple[str, dict[str, str]]]:
    """For each step of ``flow``: (run id, key parts) of its most recent recorded key."""
    def read(conn: sqlite3.Connection) -> list[Any]:
        return conn.execute(
            "SELECT step, run_id, parts, MAX(made_at) FROM step_keys WHERE flow = ? "
            "GROUP BY step", (flow,)).fetchall()

    return {step: (run_id, json.loads(parts)) for step, run_id, parts, _ in store._query(read)}


def parent_keys(store: Store, run_id: str) -> dict[str, tuple[str, dict[str, str]]]:
    """The keys (key, parts) recorded for the steps of ``run_id``."""
    def read(conn: sqlite3.Connection) -> list[Any]:  # a reused step: where it was made
        return conn.execute(
            "SELECT s.step, k.cache_key, k.parts FROM steps s JOIN step_keys k "
            "ON k.run_id = COALESCE(s.cached_from, s.run_id) AND k.step = s.step "
            "WHERE s.run_id = ?", (run_id,)).fetchall()

    return {step: (key, json.loads(parts)) for step, key, parts in store._query(read)}


def latest_results(store: Store, flow: str) -> dict[str, str]:
    """For each step of ``flow``: the run that produced its latest success (a cached step
    counts as the run it was kept from)."""
    def read(conn: sqlite3.Connection) -> list[Any]:
        return conn.execute(
            "SELECT s.step, COALESCE(s.cached_from, s.run_id), MAX(r.started_at) "
            "FROM steps s JOIN runs r ON r.run_id = s.run_id "
            "WHERE r.flow = ? AND s.status IN ('succeeded', 'cached') GROUP BY s.step",
            (flow,)).fetchall()

    return {step: run_id for step, run_id, _ in store._query(read)}


def record_keys(store: Store, run_id: str, flow: str,
                rows: Iterable[tuple[str, str, Mapping[str, str], Mapping[str, Any] | None]],
                none_values: Iterable[str] = (), reused: Mapping[str, str] | None = None
                ) -> None:
    """Keep (step, key, parts, output hashes) for steps of ``run_id``, and which of them
    returned None (``none_values``); ``reused`` steps (step -> key) only get the key on their
    row (their parts are where they were made). Committed at once."""
    now = time.time()
    nones = set(none_values)
    keyed = [(run_id, step, flow, key, json.dumps(dict(parts), sort_keys=True),
              None if outputs is None else json.dumps(dict(outputs), sort_keys=True), now,
              int(step in nones))
             for step, key, parts, outputs in rows]
    on_rows = [(row[3], run_id, row[1]) for row in keyed]
    on_rows += [(key, run_id, step) for step, key in (reused or {}).items()]
    if not on_rows:
        return

    def write(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO step_keys (run_id, step, flow, cache_key, parts, outputs, "
            "made_at, value_none) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", keyed)
        conn.executemany("UPDATE steps SET cache_key = ? WHERE run_id = ? AND step = ?",
                         on_rows)

    with store._lock:
        store.flush()
        store._write("record cache keys in", write)


def record_values(store: Store, run_id: str, flow: str, steps: Iterable[str]) -> None:
    """Note the values ``steps`` of ``run_id`` kept on disk (for ``chronum cache list``)."""
    folder = values_dir(store.path, run_id)
    if folder is None:
        return
    rows = []
    for step in steps:
        for suffix in (".parquet", ".pickle"):
            path = folder / f"{step}{suffix}"
            try:
                size = path.stat().st_size
            except OSError:
                continue
            rows.append((run_id, step, flow, str(path.relative_to(store.path.parent)), size,
                         time.time()))
            break
    if rows:
        store._write("record kept values in", lambda conn: conn.executemany(
            "INSERT OR REPLACE INTO cache_values (run_id, step, flow, path, size, saved_at) "
            "VALUES (?, ?, ?, ?, ?, ?)", rows))


def gone_values(store: Store) -> frozenset[tuple[str, str]]:
    """(run id, step) of every kept value ``clear_values`` removed: never claimed again."""
    def read(conn: sqlite3.Connection) -> list[Any]:
        return conn.execute(
            "SELECT run_id, step FROM cache_values WHERE gone_at IS NOT NULL").fetchall()

    return frozenset((run_id, step) for run_id, step in store._query(read))


def cache_entries(store: Store, flow: str | None = None) -> list[dict[str, Any]]:
    """Kept values not cleared: flow, step, run id, size in bytes, when saved, and whether
    the file is still there."""
    def read(conn: sqlite3.Connection) -> list[Any]:
        sql = ("SELECT flow, step, run_id, path, size, saved_at FROM cache_values "
               "WHERE gone_at IS NULL")
        args: tuple[str, ...] = ()
        if flow is not None:
            sql += " AND flow = ?"
            args = (flow,)
        return conn.execute(sql + " ORDER BY flow, step, saved_at DESC", args).fetchall()

    out = []
    for flow_name, step, run_id, path, size, saved in store._query(read):
        full = store.path.parent / path
        out.append({"flow": flow_name, "step": step, "run_id": run_id, "size": size,
                    "saved_at": saved, "path": str(full), "exists": full.exists()})
    return out


def clear_values(store: Store, flow: str | None = None, older_than: float | None = None
                 ) -> tuple[int, int]:
    """Delete kept values (of ``flow``; saved more than ``older_than`` seconds ago) and mark
    them gone; returns (values removed, bytes freed)."""
    now = time.time()
    chosen = [e for e in cache_entries(store, flow)
              if older_than is None or now - e["saved_at"] > older_than]
    freed = 0
    for entry in chosen:
        path = Path(entry["path"])
        try:
            os.unlink(path)
            freed += entry["size"]
        except FileNotFoundError:
            pass
    if chosen:
        store._write("mark cleared values in", lambda conn: conn.executemany(
            "UPDATE cache_values SET gone_at = ? WHERE run_id = ? AND step = ?",
            [(now, e["run_id"], e["step"]) for e in chosen]))
    return len(chosen), freed
