"""``/metrics`` of ``chronum serve``: Prometheus metrics computed from the store at each scrape.

Nothing is counted in memory: the store is the record of every run on the machine, whichever
process ran it, so each scrape asks it. Counters are the runs and steps recorded (they only
grow while history is kept), histograms the durations of finished runs and steps, a gauge the
runs in progress, and the time of each flow's last success. Labels are ``flow`` and
``status``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

__all__ = ["BUCKETS", "CONTENT_TYPE", "exposition"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Duration buckets in seconds, for runs and steps alike.
BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


def _histogram_sql(table: str, flow_of: str, join: str) -> str:
    cases = ", ".join(f"SUM(d <= {b!r})" for b in BUCKETS)
    return (f"SELECT flow, COUNT(*), SUM(d), {cases} FROM ("
            f"SELECT {flow_of} AS flow, {table}.finished_at - {table}.started_at AS d "
            f"FROM {join} WHERE {table}.finished_at IS NOT NULL "
            f"AND {table}.started_at IS NOT NULL) GROUP BY flow")


class _Collector:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        conn = self.conn
        runs = CounterMetricFamily("chronum_runs", "Runs recorded, by flow and status",
                                   labels=("flow", "status"))
        for flow, status, n in conn.execute(
                "SELECT flow, status, COUNT(*) FROM runs GROUP BY flow, status"):
            runs.add_metric((flow, status), n)
        yield runs

        steps = CounterMetricFamily("chronum_steps", "Steps recorded, by flow and status",
                                    labels=("flow", "status"))
        for flow, status, n in conn.execute(
                "SELECT r.flow, s.status, COUNT(*) FROM runs r JOIN steps s "
                "ON s.run_id = r.run_id GROUP BY r.flow, s.status"):
            steps.add_metric((flow, status), n)
        yield steps

        for name, what, sql in (
            ("chronum_run_duration_seconds", "Durations of finished runs",
             _histogram_sql("runs", "runs.flow", "runs")),
            ("chronum_step_duration_seconds", "Durations of finished steps (retries included)",
             _histogram_sql("steps", "runs.flow",
                            "runs JOIN steps ON steps.run_id = runs.run_id")),
        ):
            family = HistogramMetricFamily(name, what, labels=("flow",))
            for flow, count, total, *cumulative in conn.execute(sql):
                buckets = [(repr(b), float(c or 0)) for b, c in zip(BUCKETS, cumulative,
                                                                    strict=True)]
                buckets.append(("+Inf", float(count)))
                family.add_metric((flow,), buckets, float(total or 0.0))
            yield family

        running = GaugeMetricFamily("chronum_runs_in_progress", "Runs running now",
                                    labels=("flow",))
        for flow, n in conn.execute("SELECT flow, COUNT(*) FROM runs INDEXED BY runs_status "
                                    "WHERE status = 'running' GROUP BY flow"):
            running.add_metric((flow,), n)
        yield running

        last = GaugeMetricFamily("chronum_last_success_timestamp_seconds",
                                 "When each flow last finished a run successfully (epoch s)",
                                 labels=("flow",))
        for flow, at in conn.execute("SELECT flow, MAX(finished_at) FROM runs "
                                     "WHERE status = 'succeeded' GROUP BY flow"):
            last.add_metric((flow,), at)
        yield last


def exposition(conn: sqlite3.Connection) -> bytes:
    """The metrics in Prometheus' text format."""
    from prometheus_client import generate_latest

    return generate_latest(_Collector(conn))  # type: ignore[arg-type,unused-ignore]
