"""``Store``: one SQLite file that several processes share, plus the step logs beside it.

Writes come from the engine through the event bus: ``record`` buffers, ``flush`` commits, so a
run costs one short ``BEGIN IMMEDIATE`` transaction per scheduler tick rather than one per
event. ``begin_run`` is the exception: it commits at once, so a run exists in the database
before any of its steps starts. Reads are plain queries outside transactions (WAL lets them run
beside another process's writer).

An in-memory database (``":memory:"``) keeps its step logs in a temporary folder that
``close()`` deletes, so ``read_log`` works the same for the life of the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from ..errors import StoreError, UsageError
from ..eventbus import Event, StepSpawned
from ..model import Flow
from ..state import AttemptState, RunState, StepState
from . import queries
from .liveness import host_name, is_alive, start_token
from .logs import relative_log_path
from .recorder import Batch, Recorder, to_json
from .schema import connect, log_error, migrate, store_error

__all__ = ["Store", "flow_identity", "flow_shape", "resolve_db_path"]

T = TypeVar("T")

_MEMORY = ":memory:"


def resolve_db_path(db: str | os.PathLike[str] | None = None) -> Path:
    """``db`` if given, else ``$CHRONUM_DB``, else ``.chronum/chronum.db`` in the working dir."""
    if db is not None and os.fspath(db) != "":
        return Path(db)
    env = os.environ.get("CHRONUM_DB")
    if env:
        return Path(env)
    return Path.cwd() / ".chronum" / "chronum.db"


def flow_shape(flow: Flow) -> str:
    """A hash of the flow's step names and what each needs: what must match for a resume."""
    digest = hashlib.sha256()
    for name, needs in sorted((s.name, sorted(s.needs)) for s in flow.steps):
        digest.update(f"{name}\0{chr(0).join(needs)}\n".encode())
    return digest.hexdigest()[:32]


def flow_identity(flow: Flow) -> tuple[str | None, str | None, str]:
    """(the flow file's absolute path, a hash of its text, ``flow_shape``); no file: None."""
    source = flow.source
    if not source or not os.path.isfile(source):
        return None, None, flow_shape(flow)
    path = os.path.abspath(source)
    try:
        with open(path, "rb") as f:
            text = hashlib.sha256(f.read()).hexdigest()
    except OSError:
        text = None
    return path, text, flow_shape(flow)


def resume_conflict(conn: sqlite3.Connection, run_id: str, again: bool, *,
                    claim: bool = False) -> str | None:
    """Why ``run_id`` cannot be resumed now (another resume runs, or it or a resume of it
    succeeded, unless ``again``), or None. With ``claim`` (inside the transaction that
    inserts the resume), a resume whose runner died on this host is marked interrupted, which
    frees the run."""
    if not again:
        row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is not None and row[0] == "succeeded":
            return (f"run {run_id} succeeded: nothing to resume; run its flow again with "
                    f"`chronum run`, or resume {run_id} with --again (again=True in Python) "
                    "to record a run that reuses every step")
    here = host_name()
    for other in queries.resumes_of(conn, run_id):
        rid, pid, host = other["run_id"], other["pid"], other["host"]
        if other["status"] == "running":
            if host == here and pid is not None and not is_alive(int(pid), other["proc_token"]):
                if claim:
                    conn.execute("UPDATE runs SET status = 'interrupted' "
                                 "WHERE run_id = ? AND status = 'running'", (rid,))
                continue
            return (f"run {run_id} is being resumed by run {rid} (pid {pid} on {host}); wait "
                    f"for it, or `chronum cancel {rid}` if its runner is gone")
        if not again:
            return (f"run {run_id} was already resumed by run {rid}, which succeeded; resume "
                    f"{run_id} once more with --again (again=True in Python)")
    return None


_UPDATE_STEPS = """
UPDATE steps SET status = ?, attempts = ?, exit_code = ?, started_at = ?, finished_at = ?,
    reason = ?, cached_from = ?
WHERE run_id = ? AND step = ?
"""
_UPDATE_LOGS = "UPDATE steps SET log_path = ?, log_tail = ? WHERE run_id = ? AND step = ?"
_UPSERT_ATTEMPTS = """
INSERT INTO attempts (run_id, step, attempt, status, exit_code, started_at, finished_at, delay_s,
                      outputs)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (run_id, step, attempt) DO UPDATE SET
    status = excluded.status, exit_code = excluded.exit_code,
    started_at = excluded.started_at, finished_at = excluded.finished_at,
    delay_s = excluded.delay_s, outputs = COALESCE(excluded.outputs, outputs)
"""
_UPDATE_SPAWNS = """
UPDATE attempts SET pgid = COALESCE(?, pgid), proc_start = COALESCE(?, proc_start),
    container = COALESCE(?, container)
WHERE run_id = ? AND step = ? AND attempt = ?
"""
_INSERT_EVENTS = """
INSERT INTO events (run_id, seq, at, kind, step, attempt, data) VALUES (?, ?, ?, ?, ?, ?, ?)
"""
_UPDATE_RUNS = ("UPDATE runs SET status = ?, finished_at = ?, reason = ?, n_continued = ? "
                "WHERE run_id = ?")
_INSERT_RUN = """
INSERT INTO runs (run_id, flow, status, started_at, parent_run_id, source, params, n_steps,
                  pid, host, proc_token, origin, flow_path, flow_hash, flow_shape)
VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_INSERT_STEP = "INSERT INTO steps (run_id, step, position, status) VALUES (?, ?, ?, 'pending')"


class Store:
    """The run history of one SQLite file. Thread-safe; usable as a context manager."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        raw = os.fspath(path)
        self._memory = raw in (_MEMORY, "")
        self.path = Path(raw) if not self._memory else Path(_MEMORY)
        self._temp_logs: str | None = None
        if self._memory:
            import tempfile

            self._temp_logs = tempfile.mkdtemp(prefix="chronum-logs-")
            self.log_root = Path(self._temp_logs)
        else:
            self.log_root = self.path.parent
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = self._open(_MEMORY if self._memory else raw)
        #: The file's (device, inode) once open: SQLite goes on writing to a file that was
        #: deleted or replaced under it, so commits would succeed into a file nobody can read.
        self._identity = self._file_identity() if not self._memory else None
        self._wrote = False
        self._recorder = Recorder(self.log_root, self._load_run)

    def _open(self, raw: str) -> sqlite3.Connection:
        try:
            if not self._memory:
                self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder for the Chronum database {self.path}: {exc}"
            ) from exc
        try:
            conn = connect(raw)
        except sqlite3.Error as exc:
            raise store_error(self.path, exc, "open") from exc
        try:
            migrate(conn, self.path)
        except sqlite3.Error as exc:
            conn.close()
            raise store_error(self.path, exc, "open") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Write what is buffered, close the logs and the connection. Safe to call twice."""
        with self._lock:
            if self._conn is None:
                return
            try:
                self.flush()
                if self._wrote:
                    self._check_identity()
            except BaseException:
                self._close(quiet=True)  # the flush's error is the one to report
                raise
            self._close(quiet=False)

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _check_identity(self) -> None:
        """Fail loudly when the database file was removed or replaced since it was opened."""
        if self._identity is not None and self._file_identity() != self._identity:
            raise StoreError(f"the database file was removed or replaced during the run; "
                             f"this run's record is lost ({self.path})")

    def _close(self, *, quiet: bool) -> None:
        """Close the logs and the connection; a log that cannot be flushed (a full disk) is a
        StoreError once everything is closed, or nothing when ``quiet``."""
        try:
            self._recorder.close_logs()
        except OSError as exc:
            if not quiet:
                raise log_error(self.log_root, exc) from exc
        finally:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()
            if self._temp_logs is not None:
                import shutil

                shutil.rmtree(self._temp_logs, ignore_errors=True)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _write(self, doing: str, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body`` in one ``BEGIN IMMEDIATE`` transaction; sqlite errors become StoreError."""
        conn = self._connection()
        self._check_identity()
        self._wrote = True
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = body(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise store_error(self.path, exc, doing) from exc
        return result

    def _read(self, body: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return body(self._connection())
        except sqlite3.Error as exc:
            raise store_error(self.path, exc, "read") from exc
        except (json.JSONDecodeError, TypeError, OverflowError) as exc:
            # a crafted or damaged file (text where JSON or a time belongs): one line
            raise StoreError(f"cannot read the Chronum database {self.path}: it holds values "
                             f"Chronum did not write ({exc}); the file is damaged or was "
                             "made by something else") from None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the Chronum database {self.path} is closed")
        return self._conn

    @property
    def _where(self) -> str:
        return str(self.path)

    # -- writing ----------------------------------------------------------------------------

    def begin_run(self, run_id: str, flow: Flow, *, parent_run_id: str | None = None,
                  params: Mapping[str, str] | None = None,
                  origin: Mapping[str, str] | None = None, again: bool = False) -> None:
        """Record a new ``running`` run and its steps as ``pending``; committed at once.

        ``origin`` says where a flow without a file came from (a notebook cell's text).
        A resume (``parent_run_id``) takes the run it continues in the same transaction: it
        is refused (UsageError) while another resume of it runs, or after one succeeded
        unless ``again``; a unique index on the unfinished resumes backs this up."""
        effective = {**dict(flow.params), **dict(params or {})}
        names = flow.step_names
        run_row = (run_id, flow.name, time.time(), parent_run_id, flow.source,
                   to_json(effective), len(names), os.getpid(), host_name(), start_token(),
                   None if origin is None else to_json(dict(origin)), *flow_identity(flow))

        def insert(conn: sqlite3.Connection) -> None:
            if parent_run_id is not None:
                conflict = resume_conflict(conn, parent_run_id, again, claim=True)
                if conflict is not None:
                    raise UsageError(conflict)
            conn.execute(_INSERT_RUN, run_row)
            conn.executemany(_INSERT_STEP, [(run_id, n, i) for i, n in enumerate(names)])

        with self._lock:
            try:
                self._write("record a run in", insert)
            except StoreError as exc:
                cause = str(exc.__cause__)
                if "runs.parent_run_id" in cause:
                    raise UsageError(f"run {parent_run_id} is being resumed by another "
                                     "process; wait for it") from exc
                if "UNIQUE constraint" in cause:
                    raise StoreError(f"run {run_id!r} already exists in {self.path}") from exc
                raise
            self._recorder.add_run(run_id, names)

    def resume_conflict(self, run_id: str, again: bool = False) -> str | None:
        """Why ``run_id`` cannot be resumed now, or None (``begin_run`` checks it again)."""
        with self._lock:
            return self._read(lambda conn: resume_conflict(conn, run_id, again))

    def dead_resumes(self, run_id: str) -> list[str]:
        """The resumes of ``run_id`` whose runner died (``queries.dead_resumes``)."""
        return self._query(queries.dead_resumes, run_id, sweep=True)

    def leftovers(self, run_id: str) -> list[dict[str, Any]]:
        """What the attempts of ``run_id`` still marked running had started
        (``step``, ``attempt``, ``pgid``, ``proc_start``, ``container``)."""
        return self._query(queries.leftovers, run_id)

    def record(self, event: Event) -> None:
        """Bus subscriber: buffer the rows ``event`` implies; ``flush`` writes them.

        What an attempt started (``step.spawned``) is committed at once: a runner killed a
        moment later must leave behind the record of what to stop."""
        with self._lock:
            try:
                self._recorder.record(event)
            except OSError as exc:
                what = f"the log of step {event.step!r} of run {event.run_id!r}"
                error = log_error(self.log_root, exc, what)
                # The engine fails that one step (not the run) when this is a log line's error.
                error.log_of = (event.run_id, event.step)  # type: ignore[attr-defined]
                raise error from exc
            except KeyError as exc:
                raise StoreError(f"{exc.args[0]} (in {self.path})") from exc
            if type(event) is StepSpawned:
                self.flush()

    def flush(self) -> None:
        """Write everything buffered in one transaction (nothing to do costs nothing)."""
        with self._lock:
            try:
                self._recorder.flush_logs()
            except OSError as exc:
                raise log_error(self.log_root, exc) from exc
            batch = self._recorder.take()
            if not batch:
                return
            try:
                self._write("write to", lambda conn: _apply(conn, batch))
            except BaseException:
                self._recorder.discard()
                raise

    def _load_run(self, run_id: str) -> tuple[RunState, int]:
        """A run's state and its next event number, from the database (a run begun by
        another Store, or one the recorder let go of after it finished)."""
        conn = self._connection()
        try:
            rows = conn.execute(
                "SELECT step, status, attempts, exit_code, started_at, finished_at, reason, "
                "cached_from FROM steps WHERE run_id = ? ORDER BY position", (run_id,)
            ).fetchall()
            if not rows:
                raise StoreError(f"run {run_id!r} was never begun in {self.path}")
            seq = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            last = conn.execute(
                "SELECT step, attempt, status, exit_code, started_at, finished_at, delay_s "
                "FROM attempts WHERE run_id = ? ORDER BY attempt", (run_id,)
            ).fetchall()
        except sqlite3.Error as exc:
            raise store_error(self.path, exc, "read") from exc
        steps = {r[0]: StepState(*r[1:]) for r in rows}
        for step, *attempt in last:
            steps[step].current = AttemptState(*attempt)
        return RunState.of(run_id, steps), int(seq) + 1

    # -- logs -------------------------------------------------------------------------------

    def note_reasons(self, run_id: str, reasons: Mapping[str, str]) -> None:
        """Say why steps ran, where their rows have no reason yet (a kept step that had to run
        again on resume, say); committed at once."""
        rows = [(reason, run_id, step) for step, reason in reasons.items()]
        with self._lock:
            self.flush()
            self._write("record why steps ran in", lambda conn: conn.executemany(
                "UPDATE steps SET reason = ? WHERE run_id = ? AND step = ? AND reason IS NULL",
                rows))

    def amend_cancelled(self, run_id: str, reason: str, was: str = "run cancelled") -> None:
        """Give the steps a cancel stopped or skipped ``reason`` instead of ``was``: why the
        run was cancelled, learnt after it ended (a kernel restart interrupts the cell first,
        then asks the kernel to shut down); committed at once."""
        with self._lock:
            self.flush()
            self._write("record why the run was cancelled in", lambda conn: conn.execute(
                "UPDATE steps SET reason = ? WHERE run_id = ? AND reason = ? "
                "AND status IN ('cancelled', 'skipped')", (reason, run_id, was)))

    def log_path(self, run_id: str, step: str) -> Path | None:
        """The step's log file; a cached step points at the log of the run that produced it."""
        self.flush()
        seen: set[str] = set()
        while run_id not in seen:
            seen.add(run_id)
            row = self._log_row(run_id, step)
            if row is None:
                return None
            path = self._inside_logs(row[0], run_id, step)
            try:
                found = path.exists()
            except OSError as exc:  # a name too long for the file system, say
                why = exc.strerror.lower() if exc.strerror else str(exc)
                raise StoreError(f"cannot read the log of step {_short(step)} of run "
                                 f"{run_id}: {why}") from None
            if found:
                return path
            if not row[1]:
                return None
            run_id = row[1]
        return None

    def _inside_logs(self, stored: str | None, run_id: str, step: str) -> Path:
        """A step's log path as the database names it, only ever under the ``logs/`` folder:
        a database from someone else must not make ``chronum logs`` print any file."""
        try:
            path = self.log_root / (stored or relative_log_path(run_id, step))
            inside = path.resolve().is_relative_to((self.log_root / "logs").resolve())
        except (ValueError, OSError):
            inside = False
        if not inside:
            where = _short(stored or "")
            raise StoreError(f"the database {self.path} names a log of step {_short(step)} of "
                             f"run {_short(run_id)} outside its logs/ folder ({where}); it "
                             "was not written by Chronum, so it is not read")
        return path

    def _log_row(self, run_id: str, step: str) -> tuple[str | None, str | None] | None:
        def select(conn: sqlite3.Connection) -> tuple[str | None, str | None] | None:
            return conn.execute(  # type: ignore[no-any-return]
                "SELECT log_path, cached_from FROM steps WHERE run_id = ? AND step = ?",
                (run_id, step)).fetchone()

        return self._read(select)

    def read_log(self, run_id: str, step: str) -> str:
        """The whole log of a step ("" when it printed nothing)."""
        path = self.log_path(run_id, step)
        if path is None:
            return ""
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise StoreError(f"cannot read the log {path}: {exc}") from exc

    # -- reading ----------------------------------------------------------------------------

    def _sweep(self) -> None:
        """Show runs whose runner died as ``interrupted`` (written back once found)."""
        dead = self._read(queries.find_interrupted)
        if not dead:
            return

        def mark(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE runs SET status = 'interrupted' WHERE run_id = ? AND status = 'running'",
                [(run_id,) for run_id in dead],
            )

        self._write("update", mark)

    def _query(self, read: Callable[..., T], *args: Any, sweep: bool = False) -> T:
        """Run one of the ``queries`` functions after writing what is buffered."""
        with self._lock:
            self.flush()
            if sweep:
                self._sweep()
            return self._read(lambda conn: read(conn, *args))

    def history(self, limit: int | None = None) -> list[dict[str, Any]]:
        """One dict per run, newest first (``HISTORY_COLUMNS``)."""
        return self._query(queries.history, limit, sweep=True)

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        """One dict per step of ``run_id`` in file order (``STEP_COLUMNS``)."""
        return self._query(queries.steps, run_id)

    def step_rows(self, run_id: str) -> list[dict[str, Any]]:
        """``steps()`` plus ``cached_from``, ``log_path`` (absolute) and ``log_tail``."""
        rows = self._query(queries.step_rows, run_id)
        for row in rows:
            if row["log_path"]:
                row["log_path"] = str(self.log_root / row["log_path"])
        return rows

    def attempts(self, run_id: str) -> list[dict[str, Any]]:
        """One dict per attempt, by step position then attempt (``ATTEMPT_COLUMNS``)."""
        return self._query(queries.attempts, run_id)

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """The run's events in order (``EVENT_COLUMNS``); ``data`` is a dict."""
        return self._query(queries.events, run_id)

    def run(self, run_id: str) -> dict[str, Any]:
        """The run with its params, source and steps; RunNotFoundError when unknown."""
        return self._query(queries.run, run_id, self._where, sweep=True)

    def runner(self, run_id: str) -> dict[str, Any]:
        """Who ran ``run_id`` and which flow file it ran (``queries.runner``)."""
        return self._query(queries.runner, run_id, self._where)

    def resolve_run(self, ref: str) -> str:
        """``last``, a run id, or a unique prefix of one -> the run id."""
        return self._query(queries.resolve_run, ref, self._where)


def _short(name: str) -> str:
    return repr(name if len(name) <= 60 else name[:57] + "...")


_INSERT_NEW_STEP = """
INSERT INTO steps (run_id, step, position, status, item) VALUES (?, ?, ?, 'pending', ?)
"""


def _apply(conn: sqlite3.Connection, batch: Batch) -> None:
    if batch.new_steps:  # before the updates of their rows
        conn.executemany(_INSERT_NEW_STEP, batch.new_steps)
    if batch.steps:
        conn.executemany(_UPDATE_STEPS, batch.steps)
    if batch.attempts:
        conn.executemany(_UPSERT_ATTEMPTS, batch.attempts)
    if batch.logs:
        conn.executemany(_UPDATE_LOGS, batch.logs)
    if batch.events:
        conn.executemany(_INSERT_EVENTS, batch.events)
    if batch.runs:
        conn.executemany(_UPDATE_RUNS, batch.runs)
    if batch.spawns:  # after the attempt rows they update
        conn.executemany(_UPDATE_SPAWNS, batch.spawns)
