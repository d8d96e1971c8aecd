"""What the dashboard's pages and ``/api`` read: plain SQL over the store's connection.

The runs, steps, attempts and events of one run come from ``store.queries`` (the frames'
columns); here are only the reads the dashboard adds: the runs page filtered and paginated,
the per-flow summary, a flow's history, and a run's resumes. Times stay epoch floats here;
``app`` turns them into ISO 8601 UTC for JSON.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..store import queries

__all__ = ["flow_detail", "flows_summary", "related_runs", "runs_page"]

#: Runs per flow in the runs page's dots and sparkline.
SPARK_RUNS = 20
#: Runs of a flow the flow page looks back over.
FLOW_RUNS = 200

_RUN_COLUMNS = """
r.run_id, r.flow, r.status, r.started_at, r.finished_at, r.finished_at - r.started_at,
r.n_steps,
(SELECT COUNT(*) FROM steps s INDEXED BY steps_failed
 WHERE s.run_id = r.run_id AND s.status = 'failed'),
r.parent_run_id, COALESCE(r.n_continued, 0)
"""


def runs_page(conn: sqlite3.Connection, *, flow: str | None = None, status: str | None = None,
              since: float | None = None, until: float | None = None, limit: int = 50,
              offset: int = 0) -> dict[str, Any]:
    """Runs newest first, filtered; ``total`` counts every run the filters match."""
    where: list[str] = []
    args: list[object] = []
    if flow:
        where.append("r.flow = ?")
        args.append(flow)
    if status:
        where.append("r.status = ?")
        args.append(status)
    if since is not None:
        where.append("r.started_at >= ?")
        args.append(since)
    if until is not None:
        where.append("r.started_at < ?")
        args.append(until)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs r {clause} "
        "ORDER BY r.started_at DESC, r.rowid DESC LIMIT ? OFFSET ?",
        (*args, limit, offset)).fetchall()
    total = conn.execute(f"SELECT COUNT(*) FROM runs r {clause}", args).fetchone()[0]
    return {"runs": [dict(zip(queries.HISTORY_COLUMNS, row, strict=True)) for row in rows],
            "total": int(total), "limit": limit, "offset": offset}


def flows_summary(conn: sqlite3.Connection, n: int = SPARK_RUNS) -> list[dict[str, Any]]:
    """Per flow (by name), its last ``n`` runs oldest first: status and duration each."""
    flows = [r[0] for r in conn.execute("SELECT DISTINCT flow FROM runs ORDER BY flow")]
    out = []
    for flow in flows:
        rows = conn.execute(
            "SELECT run_id, status, started_at, finished_at - started_at FROM runs "
            "INDEXED BY runs_flow_started WHERE flow = ? ORDER BY started_at DESC LIMIT ?",
            (flow, n)).fetchall()
        runs = [{"run_id": r[0], "status": r[1], "started_at": r[2], "duration_s": r[3]}
                for r in reversed(rows)]
        out.append({"flow": flow, "runs": runs})
    return out


def flow_detail(conn: sqlite3.Connection, flow: str, n: int = FLOW_RUNS) -> dict[str, Any]:
    """A flow's last ``n`` runs (durations over time), and over them each step's failure
    rate and the slowest steps by mean duration."""
    rows = conn.execute(
        "SELECT run_id, status, started_at, finished_at - started_at FROM runs "
        "INDEXED BY runs_flow_started WHERE flow = ? ORDER BY started_at DESC LIMIT ?",
        (flow, n)).fetchall()
    runs = [{"run_id": r[0], "status": r[1], "started_at": r[2], "duration_s": r[3]}
            for r in reversed(rows)]
    ids = [r[0] for r in rows]
    steps: list[dict[str, Any]] = []
    if ids:
        marks = ",".join("?" * len(ids))
        stats = conn.execute(
            "SELECT step, MIN(position), COUNT(*), "
            "SUM(status = 'failed'), SUM(status IN ('succeeded', 'failed')), "
            "AVG(CASE WHEN status = 'succeeded' THEN finished_at - started_at END), "
            "MAX(CASE WHEN status = 'succeeded' THEN finished_at - started_at END) "
            f"FROM steps WHERE run_id IN ({marks}) GROUP BY step", ids).fetchall()
        for step, position, count, failed, ended, mean, most in stats:
            steps.append({"step": step, "position": position, "runs": count,
                          "failed": int(failed or 0), "ended": int(ended or 0),
                          "failure_rate": (failed or 0) / ended if ended else None,
                          "mean_s": mean, "max_s": most})
        steps.sort(key=lambda s: s["position"])
    slowest = sorted((s for s in steps if s["mean_s"] is not None),
                     key=lambda s: -float(s["mean_s"]))[:10]
    return {"flow": flow, "runs": runs, "steps": steps, "slowest": slowest}


def related_runs(conn: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    """The runs that resumed ``run_id``, oldest first."""
    rows = conn.execute(
        "SELECT run_id, status, started_at FROM runs WHERE parent_run_id = ? "
        "ORDER BY started_at", (run_id,)).fetchall()
    return [{"run_id": r[0], "status": r[1], "started_at": r[2]} for r in rows]
