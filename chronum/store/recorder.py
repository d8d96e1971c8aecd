"""From events to buffered rows: the write half of the store, without SQL connections.

``Store.record`` is called for every event on the engine's hot path, so it only folds the event
into the run's ``RunState`` (``chronum.state``, the fold every observer shares) and marks the
step and attempt it changed as dirty; ``Store.flush`` writes every dirty row with one
``executemany`` per table in one transaction. Rows are kept whole in memory, so a flush writes
final values and the order of the events in between never matters to SQL.

Step logs are the recorder's own business: lines go to a file per step (``logs``), and when a
step ends its log's path and tail are written beside its row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ..eventbus import Event, LogLine, RunFinished, StepExpanded, StepSpawned, StepStarted
from ..state import AttemptState, RunState, StepState
from .logs import LogWriter, relative_log_path, tail_limits

__all__ = ["Batch", "Recorder", "event_data", "to_json"]


class Batch(NamedTuple):
    """Everything one flush writes, as parameter tuples ready for ``executemany``."""

    steps: list[tuple[Any, ...]]
    attempts: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    logs: list[tuple[Any, ...]]
    runs: list[tuple[Any, ...]]
    #: What running attempts started: (pgid, proc_start, container, run_id, step, attempt).
    spawns: list[tuple[Any, ...]]
    #: Steps that join a run as it goes (a fan-out step's instances):
    #: (run_id, step, position, item), inserted before any row is updated.
    new_steps: list[tuple[Any, ...]]

    def __bool__(self) -> bool:
        return bool(self.steps or self.attempts or self.events or self.logs or self.runs
                    or self.spawns or self.new_steps)


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


class Recorder:
    """Folds events into each run's state; hands the dirty rows out as a ``Batch``.

    ``load_run`` is asked for a run this recorder has not seen (begun by another ``Store``
    object, or dropped from memory after it finished); it returns the run as stored.
    """

    def __init__(self, log_root: Path, load_run: Callable[[str], tuple[RunState, int]]) -> None:
        self._log_root = log_root
        self._tail = tail_limits()
        self._load_run = load_run
        self._runs: dict[str, RunState] = {}
        self._next_seq: dict[str, int] = {}
        self._writers: dict[tuple[str, str], LogWriter] = {}
        self._dirty_steps: dict[tuple[str, str], StepState] = {}
        self._dirty_attempts: dict[tuple[str, str, int], AttemptState] = {}
        self._events: list[tuple[Any, ...]] = []
        self._logs: list[tuple[Any, ...]] = []
        self._runs_done: dict[str, tuple[str, float, str | None, int]] = {}
        self._spawns: list[tuple[Any, ...]] = []
        self._new_steps: list[tuple[Any, ...]] = []

    def add_run(self, run_id: str, steps: tuple[str, ...]) -> None:
        self._runs[run_id] = RunState.new(run_id, steps)
        self._next_seq[run_id] = 1

    def _run(self, run_id: str) -> RunState:
        state = self._runs.get(run_id)
        if state is None:
            state, self._next_seq[run_id] = self._load_run(run_id)
            self._runs[run_id] = state
        return state

    # -- events -----------------------------------------------------------------------------

    def record(self, event: Event) -> None:
        if type(event) is LogLine:
            if event.step is not None:
                self._writer(event.run_id, event.step).write(event.line)
            return
        run_id = event.run_id
        state = self._run(run_id)
        seq = self._next_seq[run_id]
        self._events.append((run_id, seq, event.at, event.kind, event.step, event.attempt,
                             event_data(event)))
        self._next_seq[run_id] = seq + 1
        if type(event) is StepExpanded:  # new rows, positioned after every existing one
            known = len(state.steps)
            self._new_steps.extend(
                (run_id, name, known + i, item)
                for i, (name, item) in enumerate(zip(event.instances, event.items,
                                                     strict=True)))
        try:
            step = state.apply(event)
        except KeyError:
            raise KeyError(f"step {event.step!r} is not part of run {run_id!r}") from None
        if type(event) is StepSpawned:  # no state of its own: its columns on the attempt row
            self._spawns.append((event.pgid, event.proc_start, event.container, run_id,
                                 event.step, event.attempt))
            return
        if isinstance(event, RunFinished):
            self._close_logs(run_id)
            self._runs_done[run_id] = (event.status, event.at, event.reason or None,
                                       event.n_continued)
            return
        if step is None or event.step is None:
            return
        name = event.step
        self._dirty_steps[(run_id, name)] = step
        current = step.current
        if current is not None and current.attempt == step.attempts:
            self._dirty_attempts[(run_id, name, current.attempt)] = current
        if type(event) is StepStarted:
            if step.attempts > 1:
                self._writer(run_id, name).write(f"--- attempt {step.attempts} ---")
        elif step.finished_at is not None:
            self._close_log(run_id, name)

    # -- logs -------------------------------------------------------------------------------

    def _writer(self, run_id: str, step: str) -> LogWriter:
        key = (run_id, step)
        writer = self._writers.get(key)
        if writer is None:
            writer = LogWriter(self._log_root / relative_log_path(run_id, step), *self._tail)
            self._writers[key] = writer
        return writer

    def _close_log(self, run_id: str, step: str) -> None:
        writer = self._writers.pop((run_id, step), None)
        if writer is None:
            return
        writer.close()
        if writer.wrote:
            self._logs.append((relative_log_path(run_id, step).as_posix(), writer.tail,
                               run_id, step))

    def _close_logs(self, run_id: str) -> None:
        for key in [key for key in self._writers if key[0] == run_id]:
            self._close_log(*key)

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
                (s.status, s.attempts, s.exit_code, s.started_at, s.finished_at, s.reason,
                 s.cached_from, run_id, step)
                for (run_id, step), s in self._dirty_steps.items()
            ],
            attempts=[
                (run_id, step, a.attempt, a.status, a.exit_code, a.started_at, a.finished_at,
                 a.delay_s, None if a.outputs is None else to_json(a.outputs))
                for (run_id, step, _), a in self._dirty_attempts.items()
            ],
            events=self._events,
            logs=self._logs,
            runs=[(status, at, reason, n_continued, run_id)
                  for run_id, (status, at, reason, n_continued) in self._runs_done.items()],
            spawns=self._spawns,
            new_steps=self._new_steps,
        )
        self._spawns = []
        self._new_steps = []
        self._dirty_steps = {}
        self._dirty_attempts = {}
        self._events = []
        self._logs = []
        for run_id in self._runs_done:
            self._runs.pop(run_id, None)  # finished: free the memory, reload if ever needed
            self._next_seq.pop(run_id, None)
        self._runs_done = {}
        return batch

    def discard(self) -> None:
        """Drop what was buffered (after a failed write) and the rows it may have changed."""
        self.take()
        self._runs.clear()
        self._next_seq.clear()
