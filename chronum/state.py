"""The one fold from events to the state of a run: ``RunState.apply(event)``.

Every observer that needs to know "where is this run now" keeps a ``RunState`` and applies the
events it receives: the store's recorder (which turns the changed steps into rows), the terminal
printer, the notebook's live view (and later the dashboard). So the rules below exist once, and
a step shown ``failed`` in the notebook is ``failed`` in the database too.

- ``step.started``: a new attempt (its number from the event, else one more than before); the
  step is ``running``, its exit code, end and reason cleared; ``started_at`` is the first
  attempt's start.
- ``step.retrying``: the attempt ``failed``; the step is ``retrying`` with the exit code and
  reason of that attempt.
- ``step.succeeded`` / ``step.failed`` / ``step.cancelled``: the attempt and the step end so;
  the outputs an attempt wrote are kept on it.
- ``step.skipped``: the step never ran; ``skipped`` or ``upstream_failed`` with the reason.
- ``step.cached``: kept from an earlier run; ``cached`` with ``cached_from`` and the event's
  reason (a cache hit says which run and step it reuses).
- ``step.started`` carries why the step runs (a cache miss's cause); a success keeps it.
- ``run.started`` / ``run.finished``: the run's own status and times.
- ``step.expanded``: a fan-out step's instances join the run, ``pending``, each with its item
  (JSON) and the name of the step it belongs to (``fanouts``); the fan-out step is ``running``
  until its own end event, once all of them ended.

Log lines change no state. ``apply`` returns the step it changed, so a caller that writes rows
(the recorder) knows which one is dirty without comparing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .eventbus import (
    Event,
    RunFinished,
    RunStarted,
    StepCached,
    StepCancelled,
    StepExpanded,
    StepFailed,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepSucceeded,
)

__all__ = ["ACTIVE", "FINISHED", "AttemptState", "RunState", "StepState", "run_words"]

#: Step states that will not change any more in this run.
FINISHED = frozenset({"succeeded", "failed", "skipped", "upstream_failed", "cancelled",
                      "cached"})
#: Step states of a step that has started and not yet ended.
ACTIVE = frozenset({"running", "retrying"})


@dataclass(slots=True)
class AttemptState:
    """One attempt of a step: a row of the ``attempts`` table."""

    attempt: int
    status: str
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    delay_s: float = 0.0
    #: What the attempt wrote to ``$CHRONUM_OUTPUT`` or gave ``ctx.output`` (masked).
    outputs: Mapping[str, str] | None = None


@dataclass(slots=True)
class StepState:
    """One step of a run: a row of the ``steps`` table, plus the attempt in progress."""

    status: str = "pending"
    attempts: int = 0
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    reason: str | None = None
    cached_from: str | None = None
    #: The latest attempt (running, or how it ended).
    current: AttemptState | None = None
    #: An instance of a fan-out step: its item as JSON (None for every other step).
    item: str | None = None

    @property
    def outputs(self) -> Mapping[str, str] | None:
        """The outputs of the latest attempt, if it wrote any."""
        return self.current.outputs if self.current is not None else None

    @property
    def duration_s(self) -> float | None:
        """From the first attempt's start to the end of the last, retries included."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass(slots=True)
class RunState:
    """A run and its steps (in file order) as the events so far describe them."""

    run_id: str
    steps: dict[str, StepState]
    status: str = "running"
    flow: str = ""
    parent_run_id: str | None = None
    max_parallel: int = 1
    started_at: float | None = None
    finished_at: float | None = None
    #: The run's duration as the engine measured it (monotonic), once it finished.
    duration_s: float | None = None
    #: How many steps are in each state; kept as events arrive, so progress costs nothing.
    counts: dict[str, int] = field(default_factory=dict)
    #: Why the run ended so when no step says it ("run timed out after 2h").
    reason: str | None = None
    #: Failed steps under ``continueOnError`` (a ``succeeded`` run may have some).
    n_continued: int = 0
    #: Fan-out steps that expanded, and their instances in item order.
    fanouts: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def new(cls, run_id: str, steps: Iterable[str]) -> RunState:
        state = cls(run_id, {name: StepState() for name in steps})
        state.counts = {"pending": len(state.steps)} if state.steps else {}
        return state

    @classmethod
    def of(cls, run_id: str, steps: dict[str, StepState]) -> RunState:
        """A run rebuilt from stored rows (a store reopened, a recorder that forgot it)."""
        state = cls(run_id, steps)
        for step in steps.values():
            state.counts[step.status] = state.counts.get(step.status, 0) + 1
        return state

    # -- reading --------------------------------------------------------------------------

    @property
    def done(self) -> int:
        """Steps that reached a final state."""
        return sum(n for status, n in self.counts.items() if status in FINISHED)

    def active(self) -> list[str]:
        """Steps running or waiting to retry, in file order."""
        return [name for name, step in self.steps.items() if step.status in ACTIVE]

    # -- the fold -------------------------------------------------------------------------

    def apply(self, event: Event) -> StepState | None:
        """Fold ``event`` in; returns the step it changed (None for run events and logs).

        Raises ``KeyError`` for a step that is not part of the run.
        """
        handler = _HANDLERS.get(type(event))
        if handler is None:
            return None
        if event.step is None:
            handler(self, None, event)
            return None
        step = self.steps[event.step]
        before = step.status
        handler(self, step, event)
        if step.status != before:
            counts = self.counts
            counts[before] -= 1
            counts[step.status] = counts.get(step.status, 0) + 1
        return step


def run_words(status: str, n_continued: int = 0, reason: str | None = None) -> str:
    """How every view says a run ended: ``succeeded with 2 failures (continued)``,
    ``failed: run timed out after 2h``."""
    words = status
    if n_continued and status == "succeeded":
        words += f" with {n_continued} failure{'s' if n_continued != 1 else ''} (continued)"
    if reason:
        words += f": {reason}"
    return words


def _end_attempt(step: StepState, status: str, exit_code: int | None, at: float) -> None:
    current = step.current
    if current is not None and current.status == "running":
        current.status = status
        current.exit_code = exit_code
        current.finished_at = at


def _run_started(run: RunState, _: StepState | None, event: RunStarted) -> None:
    run.status = "running"
    run.flow = event.flow
    run.parent_run_id = event.parent_run_id
    run.max_parallel = event.max_parallel
    run.started_at = event.at


def _run_finished(run: RunState, _: StepState | None, event: RunFinished) -> None:
    run.status = event.status
    run.finished_at = event.at
    run.duration_s = event.duration_s
    run.reason = event.reason or None
    run.n_continued = event.n_continued


def _started(run: RunState, step: StepState, event: StepStarted) -> None:
    attempt = event.attempt or step.attempts + 1
    step.current = AttemptState(attempt, "running", started_at=event.at, delay_s=event.delay_s)
    step.status = "running"
    step.attempts = attempt
    step.exit_code = step.finished_at = None
    step.reason = event.reason or None
    if step.started_at is None or attempt == 1:
        step.started_at = event.at


def _retrying(run: RunState, step: StepState, event: StepRetrying) -> None:
    _end_attempt(step, "failed", event.exit_code, event.at)
    step.status = "retrying"
    step.exit_code = event.exit_code
    step.reason = event.reason or None


def _ended(status: str) -> Callable[[RunState, StepState, Any], None]:
    def end(run: RunState, step: StepState, event: StepSucceeded | StepFailed | StepCancelled
            ) -> None:
        _end_attempt(step, status, event.exit_code, event.at)
        written = getattr(event, "outputs", None)
        if written is not None and step.current is not None:
            step.current.outputs = written
        step.status = status
        step.exit_code = event.exit_code
        step.finished_at = event.at
        # a success keeps the reason it started with (why it ran)
        step.reason = getattr(event, "reason", "") or (
            step.reason if status == "succeeded" else None)

    return end


def _skipped(run: RunState, step: StepState, event: StepSkipped) -> None:
    step.status = event.status
    step.reason = event.reason or None


def _expanded(run: RunState, step: StepState, event: StepExpanded) -> None:
    step.status = "running"
    step.started_at = event.at
    names = run.fanouts.setdefault(event.step or "", [])
    steps = run.steps
    before = len(steps)
    for name, item in zip(event.instances, event.items, strict=True):
        if name not in steps:
            names.append(name)
            # positional: the keyword form costs a third more, ten thousand times
            steps[name] = StepState("pending", 0, None, None, None, None, None, None, item)
    run.counts["pending"] = run.counts.get("pending", 0) + len(steps) - before


def _cached(run: RunState, step: StepState, event: StepCached) -> None:
    step.status = "cached"
    step.cached_from = event.from_run
    step.reason = event.reason or f"kept from run {event.from_run}"


_HANDLERS: dict[type[Event], Callable[[RunState, Any, Any], None]] = {
    RunStarted: _run_started,
    RunFinished: _run_finished,
    StepStarted: _started,
    StepRetrying: _retrying,
    StepSucceeded: _ended("succeeded"),
    StepFailed: _ended("failed"),
    StepCancelled: _ended("cancelled"),
    StepSkipped: _skipped,
    StepCached: _cached,
    StepExpanded: _expanded,
}
