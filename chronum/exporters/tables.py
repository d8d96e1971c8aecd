"""``chronum export runs|steps|attempts|events``: history as Parquet, CSV or JSON lines.

Rows come from the same queries as the DataFrames (``store.queries``: the same columns),
across every run, optionally of one flow and from a time on. Timestamps are ISO 8601 UTC
strings in CSV and JSON lines, and UTC timestamps in Parquet; the events' ``data`` is a JSON
object (a JSON string in CSV and Parquet), and its common fields follow as columns, as in
``events()``.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from ..errors import StoreError, UsageError
from ..store import Store, queries

__all__ = ["COLUMNS", "export", "rows"]

COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": queries.HISTORY_COLUMNS,
    "steps": queries.STEP_COLUMNS,
    # ``attempts()``'s ``reason`` is read from the events of each run; the export is the table
    "attempts": tuple(c for c in queries.ATTEMPT_COLUMNS if c != "reason"),
    # as ``events()``: ``data`` whole, and its common fields as columns of their own
    "events": ("run_id", *queries.EVENT_COLUMNS, *queries.EVENT_DATA_COLUMNS),
}
_TIMES = {"started_at", "finished_at", "at"}
#: Rows read from SQLite at a time: a history of millions of steps streams through.
_CHUNK = 10_000

_SQL = {
    "runs": """
SELECT r.run_id, r.flow, r.status, r.started_at, r.finished_at,
       r.finished_at - r.started_at, r.n_steps,
       (SELECT COUNT(*) FROM steps s INDEXED BY steps_failed
        WHERE s.run_id = r.run_id AND s.status = 'failed'),
       r.parent_run_id, COALESCE(r.n_continued, 0)
FROM runs r {where} ORDER BY r.started_at, r.rowid""",
    "steps": """
SELECT s.run_id, s.step, s.status, s.attempts, s.exit_code, s.started_at, s.finished_at,
       s.finished_at - s.started_at, s.reason, s.cache_key, s.item
FROM runs r JOIN steps s ON s.run_id = r.run_id {where} ORDER BY r.started_at, r.rowid,
     s.position""",
    "attempts": """
SELECT a.run_id, a.step, a.attempt, a.status, a.exit_code, a.started_at, a.finished_at,
       a.finished_at - a.started_at, a.delay_s
FROM runs r JOIN steps s ON s.run_id = r.run_id
JOIN attempts a ON a.run_id = s.run_id AND a.step = s.step {where}
ORDER BY r.started_at, r.rowid, s.position, a.attempt""",
    "events": """
SELECT e.run_id, e.seq, e.at, e.kind, e.step, e.attempt, e.data
FROM runs r JOIN events e ON e.run_id = r.run_id {where} ORDER BY r.started_at, r.rowid,
     e.seq""",
}


def since_time(text: str | None) -> float | None:
    """``--since``: ISO 8601 (a naive time is UTC) to epoch seconds."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {text!r} is not a time; use ISO 8601, e.g. "
                         "2026-11-29 or 2026-11-29T12:00:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def rows(conn: sqlite3.Connection, table: str, flow: str | None = None,
         since: float | None = None) -> Iterator[tuple[Any, ...]]:
    """The table's rows (``COLUMNS[table]``), oldest run first, times as epoch floats."""
    where: list[str] = []
    args: list[object] = []
    if flow:
        where.append("r.flow = ?")
        args.append(flow)
    if since is not None:
        where.append("r.started_at >= ?")
        args.append(since)
    sql = _SQL[table].format(where=f"WHERE {' AND '.join(where)}" if where else "")
    cursor = conn.execute(sql, args)
    fields = queries.EVENT_DATA_COLUMNS if table == "events" else ()
    while True:
        chunk = cursor.fetchmany(_CHUNK)
        if not chunk:
            return
        if fields:  # ``data`` stays JSON text; its common fields follow as columns
            for row in chunk:
                data = json.loads(row[-1])
                yield (*row, *(data.get(f) for f in fields))
        else:
            yield from chunk


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(seconds: float) -> int:
    """Epoch seconds to whole microseconds: one rounding for every format, so a time reads
    the same in CSV, JSON lines and Parquet."""
    return round(seconds * 1_000_000)


def _iso(value: Any) -> Any:
    if value is None:
        return None
    return (_EPOCH + timedelta(microseconds=_micros(value))).isoformat(timespec="microseconds")


def _text_rows(table: str, raw: Iterator[tuple[Any, ...]]) -> Iterator[dict[str, Any]]:
    columns = COLUMNS[table]
    times = [i for i, c in enumerate(columns) if c in _TIMES]
    data = columns.index("data") if "data" in columns else -1
    for row in raw:
        out = list(row)
        try:
            for i in times:
                out[i] = _iso(out[i])
            if data >= 0:
                out[data] = json.loads(out[data])
        except (TypeError, ValueError, OverflowError) as exc:  # an edited database: one line
            raise StoreError(f"cannot export {table}: a row holds a value Chronum did not "
                             f"write ({exc}); the database is damaged or was made by "
                             "something else") from None
        yield dict(zip(columns, out, strict=True))


def _write_csv(out: IO[str], table: str, raw: Iterator[tuple[Any, ...]]) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS[table])
    for row in _text_rows(table, raw):
        writer.writerow([json.dumps(v, separators=(",", ":")) if isinstance(v, dict) else v
                         for v in row.values()])


def _write_jsonl(out: IO[str], table: str, raw: Iterator[tuple[Any, ...]]) -> None:
    for row in _text_rows(table, raw):
        out.write(json.dumps(row, separators=(",", ":")) + "\n")


def _arrow_schema(table: str) -> Any:
    import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

    kinds = {"started_at": pa.timestamp("us", tz="UTC"), "finished_at":
             pa.timestamp("us", tz="UTC"), "at": pa.timestamp("us", tz="UTC"),
             "duration_s": pa.float64(), "delay_s": pa.float64(), "n_steps": pa.int64(),
             "n_failed": pa.int64(), "attempts": pa.int64(), "attempt": pa.int64(),
             "exit_code": pa.int64(), "seq": pa.int64()}
    return pa.schema([(c, kinds.get(c, pa.string())) for c in COLUMNS[table]])


def _write_parquet(path: Path, table: str, raw: Iterator[tuple[Any, ...]]) -> None:
    try:
        import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
        import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise UsageError("--format parquet needs pyarrow: pip install 'chronum[parquet]'"
                         ) from None
    schema = _arrow_schema(table)
    columns = COLUMNS[table]
    times = {i for i, c in enumerate(columns) if c in _TIMES}
    with pq.ParquetWriter(str(path), schema) as writer:
        batch: list[tuple[Any, ...]] = []

        def flush() -> None:
            arrays = []
            for i, field in enumerate(schema):
                values = [row[i] for row in batch]
                if i in times:  # epoch seconds -> microseconds, exact for what floats hold
                    values = [None if v is None else _micros(v) for v in values]
                arrays.append(pa.array(values, type=field.type))
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            batch.clear()

        wrote = False
        for row in raw:
            batch.append(row)
            if len(batch) >= _CHUNK:
                flush()
                wrote = True
        if batch or not wrote:  # an empty export is still a file with the columns
            flush()


def export(store: Store, table: str, fmt: str, *, flow: str | None = None,
           since: str | None = None, output: str | None = None) -> None:
    """Write ``table`` in ``fmt`` to ``output`` (stdout when None; Parquet needs a file)."""
    if table not in COLUMNS:
        raise UsageError(f"cannot export {table!r}; one of: {', '.join(COLUMNS)}")
    start = since_time(since)
    if fmt == "parquet" and output is None:
        raise UsageError("--format parquet writes a file: give -o PATH")

    def write(conn: sqlite3.Connection) -> None:
        raw = rows(conn, table, flow, start)
        if fmt == "parquet":
            assert output is not None
            _write_parquet(Path(output), table, raw)
            return
        writer = _write_csv if fmt == "csv" else _write_jsonl
        if output is None:
            writer(sys.stdout, table, raw)
            return
        try:
            with open(output, "w", encoding="utf-8", newline="") as out:
                writer(out, table, raw)
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None

    store._query(write, sweep=True)
