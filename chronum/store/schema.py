"""Opening the SQLite file and migrating its schema.

The schema version lives in ``PRAGMA user_version``: migration *n* (1-based) in ``MIGRATIONS``
brings a database from version *n-1* to *n*. Migrations only ever append, so a database written
by an older Chronum opens in a newer one; a database from a *newer* Chronum is refused rather
than misread. Migrating happens inside ``BEGIN IMMEDIATE`` and re-reads the version under the
write lock, so two processes opening a fresh file at once do not both migrate it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path

from ..errors import StoreError, UsageError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "connect", "migrate", "store_error", "synchronous"]

#: Seconds a writer waits for another process's write lock before giving up.
BUSY_TIMEOUT_S = 30.0
#: WAL frames (pages) after which a commit checkpoints the WAL into the database.
WAL_AUTOCHECKPOINT_PAGES = 10_000

Migration = str | Callable[[sqlite3.Connection], None]

_V1_TABLES = """
CREATE TABLE runs (
    run_id        TEXT PRIMARY KEY,
    flow          TEXT NOT NULL,
    status        TEXT NOT NULL,
    started_at    REAL NOT NULL,
    finished_at   REAL,
    parent_run_id TEXT,
    source        TEXT,
    params        TEXT NOT NULL DEFAULT '{}',
    n_steps       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_started_at ON runs (started_at);

-- Clustered by (run_id, position): reading a run's steps in file order is one range scan.
CREATE TABLE steps (
    run_id      TEXT NOT NULL REFERENCES runs (run_id),
    step        TEXT NOT NULL,
    position    INTEGER NOT NULL,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    exit_code   INTEGER,
    started_at  REAL,
    finished_at REAL,
    reason      TEXT,
    cached_from TEXT,
    PRIMARY KEY (run_id, position)
) WITHOUT ROWID;
CREATE UNIQUE INDEX steps_name ON steps (run_id, step);

CREATE TABLE attempts (
    run_id      TEXT NOT NULL,
    step        TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    status      TEXT NOT NULL,
    exit_code   INTEGER,
    started_at  REAL,
    finished_at REAL,
    delay_s     REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, step, attempt),
    FOREIGN KEY (run_id, step) REFERENCES steps (run_id, step)
);

CREATE TABLE events (
    run_id  TEXT NOT NULL REFERENCES runs (run_id),
    seq     INTEGER NOT NULL,
    at      REAL NOT NULL,
    kind    TEXT NOT NULL,
    step    TEXT,
    attempt INTEGER,
    data    TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, seq)
);
"""

# Version 2: step logs moved to files (path + tail in the row), and the runner's identity is
# recorded so a run whose process died can be shown ``interrupted``.
_V2_LOGS_AND_LIVENESS = """
ALTER TABLE steps ADD COLUMN log_path TEXT;
ALTER TABLE steps ADD COLUMN log_tail TEXT;
ALTER TABLE runs ADD COLUMN pid INTEGER;
ALTER TABLE runs ADD COLUMN host TEXT;
ALTER TABLE runs ADD COLUMN proc_token TEXT;
CREATE INDEX runs_status ON runs (status);
CREATE INDEX steps_failed ON steps (run_id) WHERE status = 'failed';
"""

# Version 3: where a run's flow came from when it has no file (a notebook cell's text and magic
# line, as JSON), so a run can be resumed after the kernel that started it is gone.
_V3_ORIGIN = """
ALTER TABLE runs ADD COLUMN origin TEXT;
"""

# Version 4: resume continues the right flow exactly once, and stops what a dead runner left.
# - runs.flow_path / flow_hash / flow_shape: the flow file's absolute path, a hash of its
#   text, and a hash of its step names and needs, so resume refuses another flow;
# - attempts.pgid / proc_start / container: what a running attempt started (its process
#   group, the leader's start time so a reused pid is not mistaken for it, its container);
# - one run at a time may resume a given run: a unique index over the unfinished resumes.
#   Databases written before it may hold two resumes of one run marked running (the bug
#   this prevents); all but the newest are marked interrupted so the index can be built.
def _v4_resume(conn: sqlite3.Connection) -> None:
    for statement in (
        "ALTER TABLE runs ADD COLUMN flow_path TEXT",
        "ALTER TABLE runs ADD COLUMN flow_hash TEXT",
        "ALTER TABLE runs ADD COLUMN flow_shape TEXT",
        "ALTER TABLE attempts ADD COLUMN pgid INTEGER",
        "ALTER TABLE attempts ADD COLUMN proc_start TEXT",
        "ALTER TABLE attempts ADD COLUMN container TEXT",
        "UPDATE runs SET status = 'interrupted' WHERE status = 'running' "
        "AND parent_run_id IS NOT NULL AND rowid NOT IN (SELECT MAX(rowid) FROM runs "
        "WHERE status = 'running' AND parent_run_id IS NOT NULL GROUP BY parent_run_id)",
        "CREATE UNIQUE INDEX runs_resuming ON runs (parent_run_id) "
        "WHERE status = 'running' AND parent_run_id IS NOT NULL",
    ):
        conn.execute(statement)


# Version 5 (caching): each step's key and its parts (what changed is said against them) and
# the hashes of its declared output files; input files' hashes by (path, size, mtime_ns,
# inode), so an unchanged input is not read again; the values cached steps kept on disk (a
# value cleared by `chronum cache clear` is marked gone, so no later hit claims it); and the
# key on the step's row, for the frames.
def _v5_cache(conn: sqlite3.Connection) -> None:
    for statement in (
        "CREATE TABLE IF NOT EXISTS step_keys (run_id TEXT NOT NULL, step TEXT NOT NULL, "
        "flow TEXT NOT NULL, cache_key TEXT NOT NULL, parts TEXT NOT NULL, outputs TEXT, "
        "made_at REAL NOT NULL, value_none INTEGER NOT NULL DEFAULT 0, "
        "PRIMARY KEY (run_id, step))",
        "CREATE INDEX IF NOT EXISTS step_keys_key ON step_keys (cache_key)",
        "CREATE INDEX IF NOT EXISTS step_keys_flow ON step_keys (flow, step, made_at)",
        "CREATE TABLE IF NOT EXISTS input_hashes (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
        "mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, digest TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS cache_values (run_id TEXT NOT NULL, step TEXT NOT NULL, "
        "flow TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, saved_at REAL NOT NULL, "
        "gone_at REAL, PRIMARY KEY (run_id, step))",
    ):
        conn.execute(statement)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(steps)")}
    if "cache_key" not in columns:
        conn.execute("ALTER TABLE steps ADD COLUMN cache_key TEXT")


# Version 6: step outputs and the run's own end.
# - attempts.outputs: what the attempt wrote to $CHRONUM_OUTPUT or ctx.output, as JSON;
# - runs.reason: why the run ended so when no step says it ("run timed out after 2h");
# - runs.n_continued: failed steps under continueOnError (a succeeded run may have some).
def _v6_outputs(conn: sqlite3.Connection) -> None:
    for table, column, kind in (("attempts", "outputs", "TEXT"), ("runs", "reason", "TEXT"),
                                ("runs", "n_continued", "INTEGER")):
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


# Version 7: fan-out. A fan-out step's instances are rows of ``steps`` (``step[0]``, ...,
# positioned after the flow's steps), each with its item as JSON; NULL for every other step.
def _v7_fanout(conn: sqlite3.Connection) -> None:
    columns = {row[1] for row in conn.execute("PRAGMA table_info(steps)")}
    if "item" not in columns:
        conn.execute("ALTER TABLE steps ADD COLUMN item TEXT")


# Version 8 (serve): the dashboard's reads and its Cancel button.
# - runs.cancel_requested: when someone asked the run to stop (``chronum serve``'s Cancel);
#   the runner polls it, so a notebook kernel is stopped as surely as a terminal run;
# - runs by flow, newest first: the runs page filtered by flow, the flow page, the per-flow
#   dots; runs by parent: a run page's resumes.
def _v8_serve(conn: sqlite3.Connection) -> None:
    columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    if "cancel_requested" not in columns:
        conn.execute("ALTER TABLE runs ADD COLUMN cancel_requested REAL")
    conn.execute("CREATE INDEX IF NOT EXISTS runs_flow_started ON runs (flow, started_at)")
    conn.execute("CREATE INDEX IF NOT EXISTS runs_parent ON runs (parent_run_id) "
                 "WHERE parent_run_id IS NOT NULL")


#: Applied in order; never edit one that has shipped, append a new one instead.
MIGRATIONS: tuple[Migration, ...] = (_V1_TABLES, _V2_LOGS_AND_LIVENESS, _V3_ORIGIN, _v4_resume,
                                     _v5_cache, _v6_outputs, _v7_fanout, _v8_serve)
SCHEMA_VERSION = len(MIGRATIONS)


#: What a full disk means for a run, wherever it is found (the database or a step's log).
DISK_FULL = "the disk is full; free some space, then `chronum resume` the run"


def log_error(log_root: str | Path, exc: OSError, what: str = "step logs") -> StoreError:
    """A step's log file could not be written: name the folder and say what to do."""
    import errno

    why = DISK_FULL if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "it cannot be written"
    error = StoreError(f"cannot write {what} under {log_root}: {why} ({exc})")
    error.__cause__ = exc
    return error


def store_error(path: str | Path, exc: sqlite3.Error, doing: str) -> StoreError:
    """Turn a sqlite3 error into a StoreError that names the file and says what to do."""
    text = str(exc)
    lowered = text.lower()
    if "readonly" in lowered or "read-only" in lowered:
        why = "the file (or its folder) is read-only; Chronum needs to write to it"
    elif "not a database" in lowered:
        why = "the file is not a SQLite database"
    elif "locked" in lowered or "busy" in lowered:
        why = f"another process held the database lock for more than {BUSY_TIMEOUT_S:.0f} s"
    elif "unable to open" in lowered:
        why = "the file cannot be opened (check that its folder exists and is writable)"
    elif "disk" in lowered and "full" in lowered:
        why = DISK_FULL
    else:
        why = text
    error = StoreError(f"cannot {doing} the Chronum database {path}: {why} ({text})")
    error.__cause__ = exc
    return error


#: ``CHRONUM_DURABILITY`` -> ``PRAGMA synchronous``.
_DURABILITY = {"": "NORMAL", "normal": "NORMAL", "full": "FULL"}


def synchronous(environ: Mapping[str, str] = os.environ) -> str:
    """``PRAGMA synchronous`` as ``CHRONUM_DURABILITY`` asks: ``NORMAL`` (the default) or
    ``FULL``.

    In WAL mode ``NORMAL`` loses nothing committed when a process dies, only when the machine
    does (a power loss can roll back the last commits); ``FULL`` syncs the log at every commit,
    so a commit survives a power loss too, at the price of one sync per commit.
    """
    text = environ.get("CHRONUM_DURABILITY", "")
    level = _DURABILITY.get(text.strip().lower())
    if level is None:
        raise UsageError(f"CHRONUM_DURABILITY must be 'normal' or 'full', got {text!r}")
    return level


def connect(path: str) -> sqlite3.Connection:
    """Open ``path`` with the settings several processes writing one file rely on.

    ``isolation_level=None`` leaves transactions to us: every write is ``BEGIN IMMEDIATE`` so
    the lock is taken up front, where the busy handler waits for it, instead of being upgraded
    mid-transaction, where SQLite answers SQLITE_BUSY at once ("database is locked").
    """
    level = synchronous()
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL").fetchone()
        conn.execute(f"PRAGMA synchronous = {level}")
        # A run commits before every step starts; checkpointing every 1,000 WAL frames (the
        # default) would sync the disk several times in a run of a few hundred steps, while
        # closing the last connection checkpoints anyway.
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _apply(conn: sqlite3.Connection, migration: Migration) -> None:
    if isinstance(migration, str):
        for statement in migration.split(";"):
            if statement.strip():
                conn.execute(statement)
    else:
        migration(conn)


def _refuse_a_foreign_database(conn: sqlite3.Connection, path: str | Path) -> None:
    """A SQLite file with tables but no schema version is another program's: adding Chronum's
    tables to it would mix two stores in one file, so it is refused instead."""
    tables = [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name LIMIT 4")]
    if tables:
        shown = ", ".join(tables[:3]) + (", ..." if len(tables) > 3 else "")
        raise StoreError(
            f"{path} is a SQLite database but not a Chronum store (its tables: {shown}); "
            "point --db / CHRONUM_DB at a new file or an existing Chronum database")


def migrate(conn: sqlite3.Connection, path: str | Path,
            migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Bring the schema to ``len(migrations)``; return the version found before."""
    target = len(migrations)
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found == target:
        return found
    if found > target:
        raise StoreError(
            f"the Chronum database {path} has schema version {found}, but this Chronum only "
            f"knows versions up to {target}: it was written by a newer Chronum; upgrade "
            "Chronum (pip install -U chronum) or point --db / CHRONUM_DB at another file"
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if found == 0:
            _refuse_a_foreign_database(conn, path)
        for migration in migrations[found:]:
            _apply(conn, migration)
        conn.execute(f"PRAGMA user_version = {target}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found
