"""Chronum's run history: one SQLite file, step logs beside it, DataFrame views on top.

    from chronum.store import Store, resolve_db_path

    with Store(resolve_db_path()) as store:
        store.begin_run(run_id, flow)      # committed at once: the run exists before it starts
        bus.subscribe(store.record, critical=True)
        ...                                # the engine calls store.flush() every tick
        store.history()                    # list of dicts; history_frame(store) for pandas

Modules: ``schema`` (connection settings, migrations), ``recorder`` (events -> buffered rows),
``logs`` (log files and tails), ``queries`` (reads), ``liveness`` (is a runner alive),
``core`` (``Store``), ``frames`` (DataFrames; pandas imported only when called).
"""

from __future__ import annotations

from .core import Store, resolve_db_path
from .frames import attempts_frame, events_frame, history_frame, steps_frame, to_json_rows
from .queries import ATTEMPT_COLUMNS, EVENT_COLUMNS, HISTORY_COLUMNS, STEP_COLUMNS
from .schema import MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "ATTEMPT_COLUMNS",
    "EVENT_COLUMNS",
    "HISTORY_COLUMNS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "STEP_COLUMNS",
    "Store",
    "attempts_frame",
    "events_frame",
    "history_frame",
    "resolve_db_path",
    "steps_frame",
    "to_json_rows",
]
