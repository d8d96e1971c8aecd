"""DataFrame views of the store, with pinned columns and dtypes (DESIGN §6).

pandas is imported inside each function, never at module level, so ``import chronum`` stays
light. Every frame is built column by column with an explicit dtype, which is what keeps an
empty result identical in shape to a full one:

- timestamps: ``datetime64[us, UTC]`` (epoch floats carry microseconds at best);
- durations and delays: ``float64`` seconds;
- status columns: categorical over ``STEP_STATES`` / ``RUN_STATES`` (all categories present
  even when unused, so frames of different runs concatenate cleanly);
- counts that always exist: ``int64``; exit codes and event attempts may be missing: ``Int64``;
- text: pandas' string dtype (``str``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from ..model import RUN_STATES, STEP_STATES
from . import queries
from .core import Store
from .queries import Table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RunSelection", "attempts_frame", "compare_frames", "events_frame", "history_frame",
           "steps_frame", "to_epoch", "to_json_rows"]

TIMESTAMP_DTYPE = "datetime64[us, UTC]"

# Column kind per name: a dtype, or time/status/text which ``_column`` builds specially.
_KINDS: dict[str, str] = {
    "run_id": "text", "flow": "text", "step": "text", "reason": "text",
    "parent_run_id": "text", "kind": "text", "cache_key": "text",
    "started_at": "time", "finished_at": "time", "at": "time",
    "duration_s": "float64", "delay_s": "float64",
    "n_steps": "int64", "n_failed": "int64", "attempts": "int64", "seq": "int64",
    "n_continued": "int64",
    "exit_code": "Int64", "data": "object", "item": "text",
    "executor": "text", "from_run": "text",
}
#: Kinds of the event data columns where the plain kind would be wrong: an event's ``status``
#: mixes run and step words (so plain text, not a category), and its ``n_failed`` is missing
#: on all but one event.
_EVENT_DATA_KINDS = {"status": "text", "n_failed": "Int64", "attempt": "Int64"}


def _column(pd: Any, kind: str, values: Sequence[Any], statuses: Sequence[str]) -> Any:
    if kind == "time":
        floats = pd.Series(values, dtype="float64")
        return pd.to_datetime(floats, unit="s", utc=True).astype(TIMESTAMP_DTYPE)
    if kind == "status":
        # The statuses are a known small set: their codes come from a dict rather than from
        # pandas factorizing every string (already codes when the query made them: see
        # ``queries.steps_table``).
        if values and isinstance(values[0], int):
            codes = values
        else:
            index = {name: i for i, name in enumerate(statuses)}
            codes = [index.get(v, -1) for v in values]
        return pd.Series(pd.Categorical.from_codes(codes, categories=list(statuses)))
    if kind == "text":
        if len(values) > 1 and values[0] is None and values.count(None) == len(values):
            return _repeated(pd, kind, None, len(values), statuses)
        return pd.Series(values, dtype="str")
    return pd.Series(values, dtype=kind)


def _repeated(pd: Any, kind: str, value: Any, n: int, statuses: Sequence[str]) -> Any:
    """A column of ``n`` times ``value`` (None: all missing), of exactly the dtype ``_column``
    gives: one value converted, then repeated by the array itself, where converting ``n``
    values would check each one (text: every row through pandas' string check)."""
    import numpy as np

    one = _column(pd, kind, [value], statuses)
    return pd.Series(one.array.take(np.zeros(n, dtype=np.intp)))


def _frame(table: Table, wanted: Sequence[str], statuses: Sequence[str] = STEP_STATES,
           kinds: Mapping[str, str] | None = None, run_id: str | None = None) -> pd.DataFrame:
    """Columns ``wanted`` from ``table``; ``run_id`` and ``duration_s`` are filled in
    column-wise when the query left them out, and so is any other column the query left out
    because it has no value on any row (all missing)."""
    import pandas as pd

    columns, rows = table
    n = len(rows)

    def kind_of(name: str) -> str:
        return (kinds or {}).get(name) or ("status" if name == "status" else _KINDS[name])

    data = {}
    for i, name in enumerate(columns):
        values = list(map(itemgetter(i), rows))  # faster than zip(*rows) or numpy records
        data[name] = _column(pd, kind_of(name), values, statuses)
    if "run_id" in wanted and "run_id" not in data:
        data["run_id"] = _repeated(pd, "text", run_id, n, statuses)
    if ("duration_s" in wanted and "duration_s" not in data and "started_at" in data
            and "finished_at" in data):
        seconds = (data["finished_at"] - data["started_at"]).dt.total_seconds()
        data["duration_s"] = seconds.astype("float64")
    for name in wanted:
        if name not in data:
            data[name] = _repeated(pd, kind_of(name), None, n, statuses)
    return pd.DataFrame({name: data[name] for name in wanted}, columns=list(wanted))


def to_epoch(value: Any, *, now: float | None = None) -> float | None:
    """``since=``/``until=`` as epoch seconds: a datetime (naive means local time, as
    Python's own ``timestamp()`` does), a date (its midnight), an ISO 8601 string, epoch
    seconds, or a timedelta meaning that long ago."""
    import time
    from datetime import date, timedelta

    if value is None:
        return None
    if isinstance(value, timedelta):
        return (time.time() if now is None else now) - value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"cannot read {value!r} as a time; give ISO 8601, like "
                             "'2026-11-29' or '2026-11-29T13:00'") from None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day).timestamp()
    raise TypeError(f"expected a datetime, a date, an ISO 8601 string, epoch seconds or a "
                    f"timedelta, got {type(value).__name__}")


class RunSelection(NamedTuple):
    """Which runs a frame covers: all four None means "one run" (``run_id``, or the latest)."""

    flow: str | None = None
    since: float | None = None
    until: float | None = None
    status: str | None = None

    @property
    def many(self) -> bool:
        return any(v is not None for v in self)


def history_frame(store: Store, limit: int | None = None, *, flow: str | None = None,
                  status: str | None = None) -> pd.DataFrame:
    """One row per run, newest first; only runs of ``flow`` and with ``status`` if given."""
    table = store._query(queries.history_table, limit, flow, status, sweep=True)
    return _frame(table, queries.HISTORY_COLUMNS, RUN_STATES)


def _run_id(store: Store, run_id: str | None) -> str:
    return store.resolve_run("last" if run_id is None else run_id)


def _runs(store: Store, run_id: str | None, select: RunSelection | None
          ) -> list[tuple[str, str]] | None:
    """The (run id, flow) pairs of a many-run frame, or None for a frame of one run."""
    if select is None or not select.many:
        return None
    runs: list[tuple[str, str]] = store._query(queries.select_runs, *select, sweep=True)
    if run_id is not None:
        wanted = _run_id(store, run_id)
        runs = [r for r in runs if r[0] == wanted]
    return runs


def _many(store: Store, runs: list[tuple[str, str]], table_of: Any, *args: Any) -> Table:
    """One table of several runs: each run's rows with its ``run_id`` and ``flow`` first."""
    columns: tuple[str, ...] = ()
    rows: list[tuple[Any, ...]] = []
    for run_id, flow in runs:
        cols, part = store._query(table_of, run_id, *args)
        skip = 1 if cols[0] == "run_id" else 0
        columns = ("run_id", "flow", *cols[skip:])
        rows.extend((run_id, flow, *row[skip:]) for row in part)
    if not columns:  # no run matched: the columns of an empty run
        cols = store._query(table_of, "", *args)[0]
        columns = ("run_id", "flow", *(c for c in cols if c != "run_id"))
    return columns, rows


def _with_flow(columns: Sequence[str]) -> tuple[str, ...]:
    return ("run_id", "flow", *(c for c in columns if c != "run_id"))


def steps_frame(store: Store, run_id: str | None = None, *,
                select: RunSelection | None = None) -> pd.DataFrame:
    """One row per step of a run (the latest when ``run_id`` is None), in file order; with a
    ``select``ion, the steps of every run it matches, oldest run first, with a ``flow``
    column."""
    runs = _runs(store, run_id, select)
    if runs is not None:
        table = _many(store, runs, queries.steps_table, STEP_STATES)
        return _frame(table, _with_flow(queries.STEP_COLUMNS))
    resolved = _run_id(store, run_id)
    table = store._query(queries.steps_table, resolved, STEP_STATES, True)
    return _frame(table, queries.STEP_COLUMNS, run_id=resolved)


def attempts_frame(store: Store, run_id: str | None = None, *,
                   select: RunSelection | None = None) -> pd.DataFrame:
    """One row per attempt, by step (file order) then attempt number; with a ``select``ion,
    of every run it matches, with a ``flow`` column."""
    kinds = {"attempt": "int64"}
    runs = _runs(store, run_id, select)
    if runs is not None:
        table = _many(store, runs, queries.attempts_table)
        return _frame(table, _with_flow(queries.ATTEMPT_COLUMNS), kinds=kinds)
    table = store._query(queries.attempts_table, _run_id(store, run_id))
    return _frame(table, queries.ATTEMPT_COLUMNS, kinds=kinds)


def _split_data(table: Table) -> Table:
    """The event table with the known fields of ``data`` as columns of their own (missing
    where an event has no such field); ``data`` keeps the whole dict."""
    columns, rows = table
    at = columns.index("data")
    fields = queries.EVENT_DATA_COLUMNS
    split = [(*row, *(row[at].get(f) for f in fields)) for row in rows]
    return (*columns, *fields), split


def events_frame(store: Store, run_id: str | None = None, *,
                 select: RunSelection | None = None) -> pd.DataFrame:
    """The run's events in order; ``data`` holds each event's own fields as a dict, and the
    common ones are columns too (``EVENT_DATA_COLUMNS``). With a ``select``ion, the events
    of every run it matches, with ``run_id`` and ``flow`` columns."""
    runs = _runs(store, run_id, select)
    if runs is not None:
        table = _split_data(_many(store, runs, queries.events_table))
    else:
        table = _split_data(store._query(queries.events_table, _run_id(store, run_id)))
    return _frame(table, table[0], kinds=_EVENT_DATA_KINDS)


def compare_frames(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """``chronum.compare``: two runs' step frames side by side, one row per step."""
    import pandas as pd

    order = list(a["step"]) + [s for s in b["step"] if s not in set(a["step"])]
    keep = ["step", "status", "duration_s", "attempts"]
    left = a[keep].set_index("step").reindex(order)
    right = b[keep].set_index("step").reindex(order)
    status = pd.CategoricalDtype(list(STEP_STATES))
    out = pd.DataFrame({
        "step": pd.Series(order, dtype="str"),
        "status_a": pd.Series(left["status"].to_numpy(), dtype=status),
        "status_b": pd.Series(right["status"].to_numpy(), dtype=status),
        "duration_a_s": pd.Series(left["duration_s"].to_numpy(), dtype="float64"),
        "duration_b_s": pd.Series(right["duration_s"].to_numpy(), dtype="float64"),
        "attempts_a": pd.Series(left["attempts"].to_numpy(), dtype="Int64"),
        "attempts_b": pd.Series(right["attempts"].to_numpy(), dtype="Int64"),
    })
    out["duration_diff_s"] = out["duration_b_s"] - out["duration_a_s"]
    out["attempts_diff"] = out["attempts_b"] - out["attempts_a"]
    out["status_changed"] = (out["status_a"].astype("object")
                             != out["status_b"].astype("object")).astype("bool")
    out.attrs["run_a"] = a["run_id"].iloc[0] if len(a) else None
    out.attrs["run_b"] = b["run_id"].iloc[0] if len(b) else None
    return out


def _iso(value: object) -> object:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC).isoformat(timespec="milliseconds")
        except (OverflowError, OSError, ValueError):  # not a time (an edited database)
            return value
    return value


def _is_time(key: str) -> bool:
    return key == "at" or key.endswith("_at")


def _jsonish(row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if _is_time(key):
            out[key] = _iso(value)
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            out[key] = [_jsonish(v) for v in value]
        else:
            out[key] = value
    return out


def to_json_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows (or ``run()`` dicts, nested steps included) with ``*_at`` times as ISO 8601 UTC."""
    return [_jsonish(row) for row in rows]
