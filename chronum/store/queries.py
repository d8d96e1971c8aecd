"""The read half of the store: plain SQL over a connection, rows as dicts with fixed keys.

Every function here takes an open connection and returns lists of dicts whose keys are exactly
the documented columns (DESIGN §6), timestamps as epoch floats or None. The DataFrame views in
``frames`` are built on these, so the two can never disagree.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from ..errors import RunNotFoundError
from .liveness import host_name, is_alive

__all__ = [
    "ATTEMPT_COLUMNS",
    "EVENT_COLUMNS",
    "EVENT_DATA_COLUMNS",
    "HISTORY_COLUMNS",
    "STEP_COLUMNS",
    "Table",
    "attempts",
    "attempts_table",
    "dead_resumes",
    "events",
    "events_table",
    "find_interrupted",
    "history",
    "history_table",
    "leftovers",
    "resolve_run",
    "resumes_of",
    "run",
    "runner",
    "select_runs",
    "step_rows",
    "steps",
    "steps_table",
]

HISTORY_COLUMNS = ("run_id", "flow", "status", "started_at", "finished_at", "duration_s",
                   "n_steps", "n_failed", "parent_run_id", "n_continued")
STEP_COLUMNS = ("run_id", "step", "status", "attempts", "exit_code", "started_at",
                "finished_at", "duration_s", "reason", "cache_key", "item")
ATTEMPT_COLUMNS = ("run_id", "step", "attempt", "status", "exit_code", "started_at",
                   "finished_at", "duration_s", "delay_s", "reason")
EVENT_COLUMNS = ("seq", "at", "kind", "step", "attempt", "data")
#: The fields of event ``data`` that ``events()`` also gives as columns of their own (log
#: lines are no events: they are in the step's log, so no ``stream``/``line`` columns).
EVENT_DATA_COLUMNS = ("status", "exit_code", "reason", "delay_s", "duration_s", "executor",
                      "from_run", "n_failed")
#: Event kinds that end an attempt with a reason.
_ENDS_WITH_REASON = ("step.retrying", "step.failed", "step.cancelled")
_RAW_STEP_COLUMNS = ("step", "status", "attempts", "exit_code", "started_at", "finished_at",
                     "reason", "cache_key", "item")
#: The columns of ``steps`` that are NULL on most steps of most runs (``steps_table(sparse=)``).
_SPARSE_STEP_COLUMNS = ("reason", "cache_key", "item")

# ``INDEXED BY`` the partial index of failed steps: without ANALYZE statistics the planner
# would count through every step of the run (100,000 for a big one) on each history() call.
_HISTORY_SQL = """
SELECT r.run_id, r.flow, r.status, r.started_at, r.finished_at,
       r.finished_at - r.started_at,
       r.n_steps,
       (SELECT COUNT(*) FROM steps s INDEXED BY steps_failed
        WHERE s.run_id = r.run_id AND s.status = 'failed'),
       r.parent_run_id, COALESCE(r.n_continued, 0)
FROM runs r ORDER BY r.started_at DESC, r.rowid DESC
"""
_STEPS_SQL = """
SELECT step, status, attempts, exit_code, started_at, finished_at, reason, cache_key,
       item{extra}
FROM steps WHERE run_id = ? ORDER BY position
"""
# The outputs of a step's latest attempt (steps.outputs in the notebook and ``chronum show``).
_LAST_OUTPUTS = ("(SELECT a.outputs FROM attempts a WHERE a.run_id = steps.run_id "
                 "AND a.step = steps.step ORDER BY a.attempt DESC LIMIT 1)")
_ATTEMPTS_SQL = """
SELECT a.run_id, a.step, a.attempt, a.status, a.exit_code, a.started_at, a.finished_at,
       a.finished_at - a.started_at, a.delay_s
FROM attempts a JOIN steps s ON s.run_id = a.run_id AND s.step = a.step
WHERE a.run_id = ? ORDER BY s.position, a.attempt
"""


def _dicts(columns: tuple[str, ...], rows: list[Any]) -> list[dict[str, Any]]:
    return [dict(zip(columns, row)) for row in rows]  # noqa: B905 - same width by construction


Table = tuple[tuple[str, ...], list[tuple[Any, ...]]]


def steps_table(conn: sqlite3.Connection, run_id: str,
                status_codes: Sequence[str] | None = None, sparse: bool = False) -> Table:
    """``steps`` as (columns, tuples) for the DataFrame views: no dicts, and neither the
    constant ``run_id`` nor the derived ``duration_s`` (pandas adds those column-wise).

    With ``status_codes``, ``status`` comes as the index of each state in it (-1 for one not
    in it): small ints cost nothing to make, 100,000 decoded strings do. With ``sparse``,
    ``reason``, ``cache_key`` or ``item`` is left out of the table when it is NULL on every
    step (the frame makes it all missing): most steps have none of them, and counting them
    in SQLite costs less than fetching and converting a None per row."""
    columns: tuple[str, ...] = _RAW_STEP_COLUMNS
    if sparse:
        counts = conn.execute(
            f"SELECT {', '.join(f'COUNT({c})' for c in _SPARSE_STEP_COLUMNS)} "
            "FROM steps WHERE run_id = ?", (run_id,)).fetchone()
        empty = {c for c, n in zip(_SPARSE_STEP_COLUMNS, counts, strict=True) if not n}
        columns = tuple(c for c in columns if c not in empty)
    exprs = list(columns)
    args: list[Any] = [run_id]
    if status_codes is not None:
        cases = " ".join(f"WHEN ? THEN {i}" for i in range(len(status_codes)))
        exprs[columns.index("status")] = f"CASE status {cases} ELSE -1 END"
        args[:0] = status_codes
    sql = f"SELECT {', '.join(exprs)} FROM steps WHERE run_id = ? ORDER BY position"
    return columns, conn.execute(sql, args).fetchall()


def _attempt_reasons(conn: sqlite3.Connection, run_id: str) -> dict[tuple[str, int], str]:
    """Why each attempt that ended badly ended so, from its event (the attempts table keeps
    no reason: the step row has only the last one)."""
    marks = ", ".join("?" * len(_ENDS_WITH_REASON))
    rows = conn.execute(
        f"SELECT step, attempt, data FROM events WHERE run_id = ? AND kind IN ({marks}) "
        "ORDER BY seq", (run_id, *_ENDS_WITH_REASON)).fetchall()
    reasons = {}
    for step, attempt, data in rows:
        reason = json.loads(data).get("reason")
        if reason:
            reasons[(step, attempt)] = reason
    return reasons


def attempts_table(conn: sqlite3.Connection, run_id: str) -> Table:
    rows = conn.execute(_ATTEMPTS_SQL, (run_id,)).fetchall()
    reasons = _attempt_reasons(conn, run_id) if rows else {}
    return ATTEMPT_COLUMNS, [(*row, reasons.get((row[1], row[2]))) for row in rows]


def select_runs(conn: sqlite3.Connection, flow: str | None = None,
                since: float | None = None, until: float | None = None,
                status: str | None = None) -> list[tuple[str, str]]:
    """(run id, flow) of the runs that match, oldest first: ``flow`` by name, started in
    ``[since, until)`` (epoch seconds), with run ``status``."""
    where, args = [], []
    for clause, value in (("flow = ?", flow), ("started_at >= ?", since),
                          ("started_at < ?", until), ("status = ?", status)):
        if value is not None:
            where.append(clause)
            args.append(value)
    sql = "SELECT run_id, flow FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return [(r[0], r[1]) for r in conn.execute(sql + " ORDER BY started_at, rowid", args)]


def history_table(conn: sqlite3.Connection, limit: int | None = None,
                  flow: str | None = None, status: str | None = None) -> Table:
    sql = _HISTORY_SQL
    args: list[Any] = []
    where = [clause for clause, value in (("r.flow = ?", flow), ("r.status = ?", status))
             if value is not None]
    if where:
        sql = sql.replace("FROM runs r ", f"FROM runs r WHERE {' AND '.join(where)} ")
        args.extend(v for v in (flow, status) if v is not None)
    if limit is not None:
        sql += " LIMIT ?"
        args.append(max(int(limit), 0))
    return HISTORY_COLUMNS, conn.execute(sql, args).fetchall()


def events_table(conn: sqlite3.Connection, run_id: str) -> Table:
    rows = conn.execute(
        "SELECT seq, at, kind, step, attempt, data FROM events WHERE run_id = ? ORDER BY seq",
        (run_id,),
    ).fetchall()
    return EVENT_COLUMNS, [(*row[:5], json.loads(row[5])) for row in rows]


def history(conn: sqlite3.Connection, limit: int | None = None) -> list[dict[str, Any]]:
    return _dicts(*history_table(conn, limit))


def _step_dicts(run_id: str, rows: list[Any]) -> list[dict[str, Any]]:
    return [
        {"run_id": run_id, "step": step, "status": status, "attempts": attempts,
         "exit_code": exit_code, "started_at": started, "finished_at": finished,
         "duration_s": None if started is None or finished is None else finished - started,
         "reason": reason, "cache_key": cache_key, "item": item}
        for step, status, attempts, exit_code, started, finished, reason, cache_key, item in rows
    ]


def steps(conn: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    return _step_dicts(run_id, steps_table(conn, run_id)[1])


def step_rows(conn: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    """``steps`` plus ``cached_from``, ``log_path`` (as stored: relative) and ``log_tail``."""
    sql = _STEPS_SQL.format(extra=", cached_from, log_path, log_tail, " + _LAST_OUTPUTS)
    rows = conn.execute(sql, (run_id,)).fetchall()
    extra = ("cached_from", "log_path", "log_tail", "outputs")
    width = len(_RAW_STEP_COLUMNS)
    result = _step_dicts(run_id, [row[:width] for row in rows])
    for out, row in zip(result, rows, strict=True):
        out.update(zip(extra, row[width:], strict=True))
        out["outputs"] = json.loads(out["outputs"]) if out["outputs"] else None
    return result


def attempts(conn: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    return _dicts(*attempts_table(conn, run_id))


def events(conn: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    return _dicts(*events_table(conn, run_id))


def run(conn: sqlite3.Connection, run_id: str, where: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT run_id, flow, status, started_at, finished_at, finished_at - started_at, "
        "parent_run_id, params, source, origin, reason, COALESCE(n_continued, 0) "
        "FROM runs WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    if row is None:
        raise RunNotFoundError(f"no run {run_id!r} in {where}")
    keys = ("run_id", "flow", "status", "started_at", "finished_at", "duration_s",
            "parent_run_id", "params", "source", "origin", "reason", "n_continued")
    result = dict(zip(keys, row, strict=True))
    result["params"] = json.loads(result["params"] or "{}")
    result["origin"] = json.loads(result["origin"]) if result["origin"] else None
    result["steps"] = steps(conn, run_id)
    return result


def _latest(conn: sqlite3.Connection, n: int) -> list[str]:
    rows = conn.execute(
        "SELECT run_id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT ?", (n,)
    ).fetchall()
    return [r[0] for r in rows]


def resolve_run(conn: sqlite3.Connection, ref: str, where: str) -> str:
    """``last`` is the newest run; anything else is a run id or a unique prefix of one."""
    ref = ref.strip()
    if ref == "last":
        latest = _latest(conn, 1)
        if not latest:
            raise RunNotFoundError(f"no runs recorded yet in {where}")
        return str(latest[0])
    if not ref:
        raise RunNotFoundError("give a run id, a unique prefix of one, or 'last'")
    if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (ref,)).fetchone():
        return ref
    # A range scan on the primary key: every id starting with ``ref`` sorts in [ref, ref+max).
    matches = [r[0] for r in conn.execute(
        "SELECT run_id FROM runs WHERE run_id >= ? AND run_id < ? ORDER BY run_id LIMIT 11",
        (ref, ref + "\U0010ffff"),
    )]
    if len(matches) == 1:
        return str(matches[0])
    if matches:
        shown = ", ".join(matches[:10]) + (", ..." if len(matches) > 10 else "")
        raise RunNotFoundError(
            f"run {ref!r} is ambiguous: it matches {shown}; give more characters of the run id"
        )
    latest = _latest(conn, 5)
    if not latest:
        raise RunNotFoundError(f"no run matches {ref!r}: no runs recorded yet in {where}")
    raise RunNotFoundError(
        f"no run matches {ref!r} in {where}; the latest runs are: {', '.join(latest)} "
        "(or use 'last')"
    )


def find_interrupted(conn: sqlite3.Connection) -> list[str]:
    """Runs still marked ``running`` on this host whose runner process is gone.

    A run started on another host (a database on a shared disk) cannot be checked from here
    and stays ``running``.
    """
    here = host_name()
    rows = conn.execute(
        "SELECT run_id, pid, host, proc_token FROM runs WHERE status = 'running'"
    ).fetchall()
    return [
        run_id for run_id, pid, host, token in rows
        if host == here and pid is not None and not is_alive(int(pid), token)
    ]


def runner(conn: sqlite3.Connection, run_id: str, where: str) -> dict[str, Any]:
    """Who ran ``run_id`` (``pid``, ``host``, ``proc_token``) and which flow file it ran
    (``flow_path``, ``flow_hash``, ``flow_shape``): what resume and cancel check."""
    keys = ("flow_path", "flow_hash", "flow_shape", "pid", "host", "proc_token")
    row = conn.execute(f"SELECT {', '.join(keys)} FROM runs WHERE run_id = ?",
                       (run_id,)).fetchone()
    if row is None:
        raise RunNotFoundError(f"no run {run_id!r} in {where}")
    return dict(zip(keys, row, strict=True))


def resumes_of(conn: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    """The runs that resumed ``run_id`` and are running or succeeded, oldest first."""
    keys = ("run_id", "status", "pid", "host", "proc_token")
    rows = conn.execute(
        "SELECT run_id, status, pid, host, proc_token FROM runs WHERE parent_run_id = ? "
        "AND status IN ('running', 'succeeded') ORDER BY started_at, rowid", (run_id,)
    ).fetchall()
    return _dicts(keys, rows)


def dead_resumes(conn: sqlite3.Connection, run_id: str) -> list[str]:
    """The resumes of ``run_id`` whose runner died (``interrupted``): what they started may
    still run the same steps."""
    rows = conn.execute("SELECT run_id FROM runs WHERE parent_run_id = ? AND "
                        "status = 'interrupted' ORDER BY started_at", (run_id,)).fetchall()
    return [r[0] for r in rows]


def leftovers(conn: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    """What the attempts of ``run_id`` still marked running had started (process group,
    its leader's start time, container), in step order."""
    keys = ("step", "attempt", "pgid", "proc_start", "container")
    rows = conn.execute(
        "SELECT a.step, a.attempt, a.pgid, a.proc_start, a.container FROM attempts a "
        "JOIN steps s ON s.run_id = a.run_id AND s.step = a.step "
        "WHERE a.run_id = ? AND a.status = 'running' "
        "AND (a.pgid IS NOT NULL OR a.container IS NOT NULL) ORDER BY s.position, a.attempt",
        (run_id,),
    ).fetchall()
    return _dicts(keys, rows)
