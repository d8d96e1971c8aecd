"""``/metrics`` of ``chronum serve``: Prometheus metrics computed from the store at each scrape.

Nothing is counted from events: the store is the record of every run on the machine,
whichever process ran it, so each scrape asks it (remembering only what the steps of finished
runs add up to, which cannot change). Counters are the runs and steps recorded (they only
grow while history is kept), histograms the durations of finished runs and steps, a gauge the
runs in progress, and the time of each flow's last success. Labels are ``flow`` and
``status``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

__all__ = ["BUCKETS", "CONTENT_TYPE", "StepCache", "exposition"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Duration buckets in seconds, for runs and steps alike.
BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


_CASES = ", ".join(f"SUM(d <= {b!r})" for b in BUCKETS)
#: Per run and step state: how many, and over the finished ones their count, total duration
#: and the cumulative bucket counts. One pass in primary-key order over the steps asked for.
_STEPS_SQL = f"""
SELECT run_id, status, COUNT(*), COUNT(d), SUM(d), {_CASES} FROM (
    SELECT run_id, status, finished_at - started_at AS d FROM steps WHERE run_id IN ({{marks}}))
GROUP BY run_id, status
"""
_FINAL = frozenset({"succeeded", "failed", "cancelled"})


class _RunSteps:
    """One run's steps, summed: counts by state, and the histogram of finished durations."""

    __slots__ = ("buckets", "by_status", "count", "total")

    def __init__(self) -> None:
        self.by_status: dict[str, int] = {}
        self.count = 0
        self.total = 0.0
        self.buckets = [0] * len(BUCKETS)


class StepCache:
    """What the steps of finished runs add up to, kept between scrapes: a finished run's
    steps no longer change, so a scrape reads only the steps of runs new or still running,
    instead of every step of the history each time."""

    def __init__(self) -> None:
        self.runs: dict[str, _RunSteps] = {}

    def read(self, conn: sqlite3.Connection, runs: list[tuple[str, str, str]]
             ) -> dict[str, _RunSteps]:
        """The step sums of ``runs`` (run id, flow, status), cached for the final ones."""
        out: dict[str, _RunSteps] = {}
        todo = []
        for run_id, _flow, _status in runs:
            known = self.runs.get(run_id)
            if known is not None:
                out[run_id] = known
            else:
                todo.append(run_id)
        final = {run_id for run_id, _flow, status in runs if status in _FINAL}
        for i in range(0, len(todo), 500):
            chunk = todo[i:i + 500]
            sql = _STEPS_SQL.format(marks=",".join("?" * len(chunk)))
            for run_id, status, n, done, total, *cumulative in conn.execute(sql, chunk):
                sums = out.setdefault(run_id, _RunSteps())
                sums.by_status[status] = n
                sums.count += done
                sums.total += total or 0.0
                for k, c in enumerate(cumulative):
                    sums.buckets[k] += c or 0
        for run_id in todo:
            sums = out.setdefault(run_id, _RunSteps())
            if run_id in final:
                self.runs[run_id] = sums
        return out


class _Collector:
    def __init__(self, conn: sqlite3.Connection, cache: StepCache) -> None:
        self.conn = conn
        self.cache = cache

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        conn = self.conn
        rows = conn.execute("SELECT run_id, flow, status, started_at, finished_at "
                            "FROM runs").fetchall()
        runs = CounterMetricFamily("chronum_runs", "Runs recorded, by flow and status",
                                   labels=("flow", "status"))
        run_counts: dict[tuple[str, str], int] = {}
        durations: dict[str, list[float]] = {}
        running: dict[str, int] = {}
        last: dict[str, float] = {}
        for _rid, flow, status, started, finished in rows:
            run_counts[(flow, status)] = run_counts.get((flow, status), 0) + 1
            if finished is not None and started is not None:
                durations.setdefault(flow, []).append(finished - started)
            if status == "running":
                running[flow] = running.get(flow, 0) + 1
            if status == "succeeded" and finished is not None:
                last[flow] = max(last.get(flow, finished), finished)
        for key, n in sorted(run_counts.items()):
            runs.add_metric(key, n)
        yield runs

        sums = self.cache.read(conn, [(r[0], r[1], r[2]) for r in rows])
        flow_of = {r[0]: r[1] for r in rows}
        step_counts: dict[tuple[str, str], int] = {}
        step_hist: dict[str, _RunSteps] = {}
        for run_id, part in sums.items():
            flow = flow_of[run_id]
            for status, n in part.by_status.items():
                step_counts[(flow, status)] = step_counts.get((flow, status), 0) + n
            into = step_hist.setdefault(flow, _RunSteps())
            into.count += part.count
            into.total += part.total
            for k, c in enumerate(part.buckets):
                into.buckets[k] += c
        steps = CounterMetricFamily("chronum_steps", "Steps recorded, by flow and status",
                                    labels=("flow", "status"))
        for key, n in sorted(step_counts.items()):
            steps.add_metric(key, n)
        yield steps

        run_hist = HistogramMetricFamily("chronum_run_duration_seconds",
                                         "Durations of finished runs", labels=("flow",))
        for flow, values in sorted(durations.items()):
            buckets = [(repr(b), float(sum(1 for v in values if v <= b))) for b in BUCKETS]
            buckets.append(("+Inf", float(len(values))))
            run_hist.add_metric((flow,), buckets, float(sum(values)))
        yield run_hist

        step_family = HistogramMetricFamily(
            "chronum_step_duration_seconds", "Durations of finished steps (retries included)",
            labels=("flow",))
        for flow, part in sorted(step_hist.items()):
            buckets = [(repr(b), float(c)) for b, c in zip(BUCKETS, part.buckets, strict=True)]
            buckets.append(("+Inf", float(part.count)))
            step_family.add_metric((flow,), buckets, part.total)
        yield step_family

        gauge = GaugeMetricFamily("chronum_runs_in_progress", "Runs running now",
                                  labels=("flow",))
        for flow, n in sorted(running.items()):
            gauge.add_metric((flow,), n)
        yield gauge

        success = GaugeMetricFamily("chronum_last_success_timestamp_seconds",
                                    "When each flow last finished a run successfully (epoch s)",
                                    labels=("flow",))
        for flow, at in sorted(last.items()):
            success.add_metric((flow,), at)
        yield success


def exposition(conn: sqlite3.Connection, cache: StepCache | None = None) -> bytes:
    """The metrics in Prometheus' text format (``cache`` kept between scrapes)."""
    from prometheus_client import generate_latest

    collector = _Collector(conn, cache if cache is not None else StepCache())
    return generate_latest(collector)  # type: ignore[arg-type,unused-ignore]
