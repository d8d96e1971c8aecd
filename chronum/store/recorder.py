"""From events to buffered rows: the write half of the store, without SQL connections.

``Store.record`` is called for every event on the engine's hot path, so it only updates small
in-memory rows and marks them dirty; ``Store.flush`` writes every dirty row with one
``executemany`` per table in one transaction. Rows are kept whole in memory (a step row is a
few hundred bytes), so a flush writes final values and the order of the events in between never
matters to SQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ..eventbus import (
    Event,
    LogLine,
    RunFinished,
    StepCached,
    StepCancelled,
    StepFailed,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepSucceeded,
)
from .logs import LogWriter, relative_log_path, tail_limits

__all__ = ["AttemptRow", "Batch", "Recorder", "RunState", "StepRow"]


# Plain slotted classes rather than dataclasses: they are made per step on the hot path, and
# building dataclasses costs milliseconds at import, which every ``chronum run`` pays.
class AttemptRow:
    __slots__ = ("attempt", "delay_s", "exit_code", "finished_at", "started_at", "status")

    def __init__(self, attempt: int, status: str, exit_code: int | None = None,
                 started_at: float | None = None, finished_at: float | None = None,
                 delay_s: float = 0.0) -> None:
        self.attempt = attempt
        self.status = status
        self.exit_code = exit_code
        self.started_at = started_at
        self.finished_at = finished_at
        self.delay_s = delay_s


class StepRow:
    """A ``steps`` row as the recorder keeps it, plus the attempt in progress."""

    __slots__ = ("attempts", "cached_from", "current", "exit_code", "finished_at", "log_path",
                 "log_tail", "reason", "started_at", "status")

    def __init__(self, status: str = "pending", attempts: int = 0, exit_code: int | None = None,
                 started_at: float | None = None, finished_at: float | None = None,
                 reason: str | None = None, cached_from: str | None = None,
                 log_path: str | None = None, log_tail: str | None = None) -> None:
        self.status = status
        self.attempts = attempts
        self.exit_code = exit_code
        self.started_at = started_at
        self.finished_at = finished_at
        self.reason = reason
        self.cached_from = cached_from
        self.log_path = log_path
        self.log_tail = log_tail
        self.current: AttemptRow | None = None


class RunState:
    """What the recorder knows of one run: its steps' rows and the next event number."""

    __slots__ = ("next_seq", "steps")

    def __init__(self, steps: dict[str, StepRow], next_seq: int = 1) -> None:
        self.steps = steps
        self.next_seq = next_seq


class Batch(NamedTuple):
    """Everything one flush writes, as parameter tuples ready for ``executemany``."""

    steps: list[tuple[Any, ...]]
    attempts: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    runs: list[tuple[Any, ...]]

    def __bool__(self) -> bool:
        return bool(self.steps or self.attempts or self.events or self.runs)


def _jsonable(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


# One encoder built once: ``json.dumps`` with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(default=_jsonable, separators=(",", ":"))


def to_json(value: object) -> str:
    return _ENCODER.encode(value)


def event_data(event: Event) -> str:
    """``event.data`` as JSON."""
    return _ENCODER.encode({name: getattr(event, name) for name in event.FIELDS})


_ENDED = ("succeeded", "failed", "cancelled")


class Recorder:
    """Applies events to in-memory rows; hands the dirty ones out as a ``Batch``.

    ``load_run`` is asked for a run this recorder has not seen (begun by another ``Store``
    object, or dropped from memory after it finished); it returns the rows as stored.
    """

    def __init__(self, log_root: Path, load_run: Callable[[str], RunState]) -> None:
        self._log_root = log_root
        self._tail = tail_limits()
        self._load_run = load_run
        self._runs: dict[str, RunState] = {}
        self._writers: dict[tuple[str, str], LogWriter] = {}
        self._dirty_steps: dict[tuple[str, str], StepRow] = {}
        self._dirty_attempts: dict[tuple[str, str, int], AttemptRow] = {}
        self._events: list[tuple[Any, ...]] = []
        self._runs_done: dict[str, tuple[str, float]] = {}
        self._handlers: dict[str, Callable[[Any, StepRow], None]] = {
            StepStarted.kind: self._started,
            StepRetrying.kind: self._retrying,
            StepSucceeded.kind: self._succeeded,
            StepFailed.kind: self._failed,
            StepCancelled.kind: self._cancelled,
            StepSkipped.kind: self._skipped,
            StepCached.kind: self._cached,
        }

    def add_run(self, run_id: str, steps: tuple[str, ...]) -> None:
        self._runs[run_id] = RunState({name: StepRow() for name in steps})

    def _run(self, run_id: str) -> RunState:
        state = self._runs.get(run_id)
        if state is None:
            state = self._runs[run_id] = self._load_run(run_id)
        return state

    # -- events -----------------------------------------------------------------------------

    def record(self, event: Event) -> None:
        if type(event) is LogLine:
            self._log(event)
            return
        state = self._run(event.run_id)
        self._events.append((
            event.run_id, state.next_seq, event.at, event.kind, event.step, event.attempt,
            event_data(event),
        ))
        state.next_seq += 1
        if isinstance(event, RunFinished):
            self._close_logs(event.run_id)
            self._runs_done[event.run_id] = (event.status, event.at)
            return
        handler = self._handlers.get(event.kind)
        if handler is None or event.step is None:
            return
        row = state.steps.get(event.step)
        if row is None:
            raise KeyError(f"step {event.step!r} is not part of run {event.run_id!r}")
        handler(event, row)
        self._dirty_steps[(event.run_id, event.step)] = row

    def _attempt_done(self, event: Event, row: StepRow, status: str,
                      exit_code: int | None) -> None:
        current = row.current
        if current is None or current.status not in ("running",):
            return
        current.status = status
        current.exit_code = exit_code
        current.finished_at = event.at
        assert event.step is not None
        self._dirty_attempts[(event.run_id, event.step, current.attempt)] = current

    def _started(self, event: StepStarted, row: StepRow) -> None:
        assert event.step is not None
        attempt = event.attempt or row.attempts + 1
        current = AttemptRow(attempt, "running", started_at=event.at, delay_s=event.delay_s)
        row.current = current
        self._dirty_attempts[(event.run_id, event.step, attempt)] = current
        row.status = "running"
        row.attempts = attempt
        row.exit_code = row.finished_at = row.reason = None
        if row.started_at is None or attempt == 1:
            row.started_at = event.at
        if attempt > 1:
            self._writer(event.run_id, event.step).write(f"--- attempt {attempt} ---")

    def _retrying(self, event: StepRetrying, row: StepRow) -> None:
        self._attempt_done(event, row, "failed", event.exit_code)
        row.status = "retrying"
        row.exit_code = event.exit_code
        row.reason = event.reason or None

    def _end(self, event: Event, row: StepRow, status: str, exit_code: int | None,
             reason: str | None) -> None:
        self._attempt_done(event, row, status, exit_code)
        row.status = status
        row.exit_code = exit_code
        row.finished_at = event.at
        row.reason = reason
        assert event.step is not None
        self._close_log(event.run_id, event.step, row)

    def _succeeded(self, event: StepSucceeded, row: StepRow) -> None:
        self._end(event, row, "succeeded", event.exit_code, None)

    def _failed(self, event: StepFailed, row: StepRow) -> None:
        self._end(event, row, "failed", event.exit_code, event.reason or None)

    def _cancelled(self, event: StepCancelled, row: StepRow) -> None:
        self._end(event, row, "cancelled", event.exit_code, event.reason or None)

    def _skipped(self, event: StepSkipped, row: StepRow) -> None:
        row.status = event.status
        row.reason = event.reason or None

    def _cached(self, event: StepCached, row: StepRow) -> None:
        row.status = "cached"
        row.cached_from = event.from_run
        row.reason = f"kept from run {event.from_run}"

    # -- logs -------------------------------------------------------------------------------

    def _writer(self, run_id: str, step: str) -> LogWriter:
        key = (run_id, step)
        writer = self._writers.get(key)
        if writer is None:
            writer = LogWriter(self._log_root / relative_log_path(run_id, step), *self._tail)
            self._writers[key] = writer
        return writer

    def _log(self, event: LogLine) -> None:
        if event.step is None:
            return
        self._writer(event.run_id, event.step).write(event.line)

    def _close_log(self, run_id: str, step: str, row: StepRow) -> None:
        writer = self._writers.pop((run_id, step), None)
        if writer is None:
            return
        writer.close()
        if writer.wrote:
            row.log_path = relative_log_path(run_id, step).as_posix()
            row.log_tail = writer.tail

    def _close_logs(self, run_id: str) -> None:
        state = self._runs.get(run_id)
        for key in [key for key in self._writers if key[0] == run_id]:
            row = state.steps.get(key[1]) if state else None
            if row is None:
                self._writers.pop(key).close()
                continue
            self._close_log(run_id, key[1], row)
            self._dirty_steps[key] = row

    def flush_logs(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    def close_logs(self) -> None:
        """Close every log; a log that cannot be flushed does not keep the others open."""
        writers, self._writers = list(self._writers.values()), {}
        failed: OSError | None = None
        for writer in writers:
            try:
                writer.close()
            except OSError as exc:
                failed = failed or exc
        if failed is not None:
            raise failed

    # -- batches ----------------------------------------------------------------------------

    def take(self) -> Batch:
        """Hand out every dirty row and forget that they were dirty."""
        batch = Batch(
            steps=[
                (r.status, r.attempts, r.exit_code, r.started_at, r.finished_at, r.reason,
                 r.cached_from, r.log_path, r.log_tail, run_id, step)
                for (run_id, step), r in self._dirty_steps.items()
            ],
            attempts=[
                (run_id, step, a.attempt, a.status, a.exit_code, a.started_at, a.finished_at,
                 a.delay_s)
                for (run_id, step, _), a in self._dirty_attempts.items()
            ],
            events=self._events,
            runs=[(status, at, run_id) for run_id, (status, at) in self._runs_done.items()],
        )
        self._dirty_steps = {}
        self._dirty_attempts = {}
        self._events = []
        for run_id in self._runs_done:
            self._runs.pop(run_id, None)  # finished: free the memory, reload if ever needed
        self._runs_done = {}
        return batch

    def discard(self) -> None:
        """Drop what was buffered (after a failed write) and the rows it may have changed."""
        self.take()
        self._runs.clear()
