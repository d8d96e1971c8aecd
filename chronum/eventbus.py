"""Events and the bus that carries them (``chronum.events()`` is the DataFrame of a run's
recorded events; this module is the live side).

Every observer of a run hangs off one ``EventBus``: the store, the terminal printer, the JSON
lines writer, the notebook view and any subscriber a user adds. Emitting is synchronous and
cheap; a subscriber that raises is reported once (a warning on the ``chronum`` logger) and
detached, the run goes on. Subscribers registered as ``critical`` (the store) are different:
their errors propagate to the engine, which fails the run, because a run that cannot be recorded
must not pretend to succeed.

Event names are stable: ``run.started``, ``step.started``, ``step.log``, ``step.retrying``,
``step.succeeded``, ``step.failed``, ``step.skipped``, ``step.cached``, ``step.cancelled``,
``run.finished``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

__all__ = [
    "EVENT_KINDS",
    "Event",
    "EventBus",
    "LogLine",
    "RunFinished",
    "RunStarted",
    "StepCached",
    "StepCancelled",
    "StepFailed",
    "StepRetrying",
    "StepSkipped",
    "StepStarted",
    "StepSucceeded",
    "Subscriber",
]

logger = logging.getLogger("chronum")


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event: which run, when (epoch seconds), which step and attempt.

    ``FIELDS`` lists a kind's own fields beyond these, in order: what ``data`` holds and what
    the store writes as the event's JSON.
    """

    kind: ClassVar[str] = "event"
    FIELDS: ClassVar[tuple[str, ...]] = ()

    run_id: str
    at: float = field(default_factory=time.time)
    step: str | None = None
    attempt: int | None = None

    @property
    def data(self) -> dict[str, Any]:
        """The event's own fields beyond the common ones, JSON-ready."""
        return {name: getattr(self, name) for name in self.FIELDS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "run_id": self.run_id,
            "at": self.at,
            "step": self.step,
            "attempt": self.attempt,
            "data": self.data,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run.started"
    flow: str = ""
    steps: tuple[str, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    parent_run_id: str | None = None
    source: str | None = None
    max_parallel: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class StepStarted(Event):
    kind: ClassVar[str] = "step.started"
    delay_s: float = 0.0
    executor: str = "shell"


@dataclass(frozen=True, slots=True, kw_only=True)
class LogLine(Event):
    kind: ClassVar[str] = "step.log"
    stream: str = "stdout"
    line: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRetrying(Event):
    """An attempt failed and another will follow after ``delay_s``."""

    kind: ClassVar[str] = "step.retrying"
    exit_code: int | None = None
    delay_s: float = 0.0
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StepSucceeded(Event):
    kind: ClassVar[str] = "step.succeeded"
    exit_code: int | None = 0
    duration_s: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class StepFailed(Event):
    kind: ClassVar[str] = "step.failed"
    exit_code: int | None = None
    duration_s: float = 0.0
    reason: str = ""
    continued: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StepSkipped(Event):
    """Never started: ``status`` is ``skipped`` or ``upstream_failed``."""

    kind: ClassVar[str] = "step.skipped"
    status: str = "skipped"
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StepCached(Event):
    """Kept from an earlier run (resume)."""

    kind: ClassVar[str] = "step.cached"
    from_run: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StepCancelled(Event):
    kind: ClassVar[str] = "step.cancelled"
    exit_code: int | None = None
    duration_s: float = 0.0
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished(Event):
    kind: ClassVar[str] = "run.finished"
    status: str = "succeeded"
    duration_s: float = 0.0
    n_failed: int = 0


_KINDS: tuple[type[Event], ...] = (
    RunStarted, StepStarted, LogLine, StepRetrying, StepSucceeded, StepFailed, StepSkipped,
    StepCached, StepCancelled, RunFinished,
)
_COMMON = frozenset(f.name for f in fields(Event))
for _cls in _KINDS:
    _cls.FIELDS = tuple(f.name for f in fields(_cls) if f.name not in _COMMON)

EVENT_KINDS = tuple(cls.kind for cls in _KINDS)

Subscriber = Callable[[Event], None]


def _report(subscriber: Subscriber, exc: BaseException) -> None:
    name = getattr(subscriber, "__qualname__", repr(subscriber))
    logger.warning("event subscriber %s raised %s: %s; it has been detached, the run goes on",
                   name, type(exc).__name__, exc)


class EventBus:
    """Synchronous fan-out of events to subscribers, in subscription order."""

    def __init__(self, on_error: Callable[[Subscriber, BaseException], None] = _report) -> None:
        self._subscribers: list[tuple[Subscriber, bool]] = []
        self._on_error = on_error

    def subscribe(self, subscriber: Subscriber, *, critical: bool = False) -> Callable[[], None]:
        """Add ``subscriber``; returns a function that removes it again."""
        entry = (subscriber, critical)
        self._subscribers.append(entry)

        def unsubscribe() -> None:
            if entry in self._subscribers:
                self._subscribers.remove(entry)

        return unsubscribe

    def emit(self, event: Event) -> None:
        for entry in tuple(self._subscribers):
            subscriber, critical = entry
            if critical:
                subscriber(event)
                continue
            try:
                subscriber(event)
            except Exception as exc:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)
                self._on_error(subscriber, exc)
