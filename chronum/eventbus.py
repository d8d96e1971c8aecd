"""Events and the bus that carries them (``chronum.events()`` is the DataFrame of a run's
recorded events; this module is the live side).

Every observer of a run hangs off one ``EventBus``: the store, the terminal printer, the JSON
lines writer, the notebook view and any subscriber a user adds. Emitting is synchronous and
cheap; a subscriber that raises is reported once (a warning on the ``chronum`` logger) and
detached, the run goes on. Subscribers registered as ``critical`` (the store) are different:
their errors propagate to the engine, which fails the run, because a run that cannot be
recorded must not pretend to succeed.

Event names are stable: ``run.started``, ``step.started``, ``step.log``, ``step.retrying``,
``step.succeeded``, ``step.failed``, ``step.skipped``, ``step.cached``, ``step.cancelled``,
``step.spawned``, ``run.finished``, ``step.expanded``.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable, Mapping
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
    "StepExpanded",
    "StepFailed",
    "StepRetrying",
    "StepSkipped",
    "StepSpawned",
    "StepStarted",
    "StepSucceeded",
    "Subscriber",
]

logger = logging.getLogger("chronum")

_set = object.__setattr__


class Event:
    """Base of every event: which run, when (epoch seconds), which step and attempt.

    Events are read-only, slotted records, written by hand rather than as frozen dataclasses
    because every ``chronum run`` would pay for creating twelve dataclasses at import:
    ``benchmarks/choices.py`` measures that cost against a one-step run, and this form stays
    only while it saves at least 5 % of it (``docs/performance.md``). Each kind keeps the shape
    a dataclass would have: keyword-only fields with defaults, ``FIELDS`` listing its own
    fields in order.
    """

    __slots__ = ("at", "attempt", "run_id", "step")
    kind: ClassVar[str] = "event"
    FIELDS: ClassVar[tuple[str, ...]] = ()

    run_id: str
    at: float
    step: str | None
    attempt: int | None

    def __init__(self, *, run_id: str, at: float | None = None, step: str | None = None,
                 attempt: int | None = None) -> None:
        _set(self, "run_id", run_id)
        _set(self, "at", time.time() if at is None else at)
        _set(self, "step", step)
        _set(self, "attempt", attempt)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only: cannot delete {name!r}")

    def __repr__(self) -> str:
        names = ("run_id", "at", "step", "attempt", *self.FIELDS)
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        return f"{type(self).__name__}({inner})"

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


class RunStarted(Event):
    __slots__ = FIELDS = ("flow", "steps", "params", "parent_run_id", "source", "max_parallel")
    kind: ClassVar[str] = "run.started"
    flow: str
    steps: tuple[str, ...]
    params: Mapping[str, str]
    parent_run_id: str | None
    source: str | None
    max_parallel: int

    def __init__(self, *, run_id: str, at: float | None = None, step: str | None = None,
                 attempt: int | None = None, flow: str = "", steps: tuple[str, ...] = (),
                 params: Mapping[str, str] | None = None, parent_run_id: str | None = None,
                 source: str | None = None, max_parallel: int = 1) -> None:
        Event.__init__(self, run_id=run_id, at=at, step=step, attempt=attempt)
        _set(self, "flow", flow)
        _set(self, "steps", steps)
        _set(self, "params", {} if params is None else params)
        _set(self, "parent_run_id", parent_run_id)
        _set(self, "source", source)
        _set(self, "max_parallel", max_parallel)


class StepStarted(Event):
    """An attempt starts; ``reason`` says why the step runs (a cache miss's cause), if known."""

    __slots__ = FIELDS = ("delay_s", "executor", "reason")
    kind: ClassVar[str] = "step.started"
    delay_s: float
    executor: str
    reason: str

    def __init__(self, *, run_id: str, at: float | None = None, step: str | None = None,
                 attempt: int | None = None, delay_s: float = 0.0,
                 executor: str = "shell", reason: str = "") -> None:
        Event.__init__(self, run_id=run_id, at=at, step=step, attempt=attempt)
        _set(self, "delay_s", delay_s)
        _set(self, "executor", executor)
        _set(self, "reason", reason)


class LogLine(Event):
    __slots__ = FIELDS = ("stream", "line")
    kind: ClassVar[str] = "step.log"
    stream: str
    line: str

    def __init__(self, *, run_id: str, at: float | None = None, step: str | None = None,
                 attempt: int | None = None, stream: str = "stdout", line: str = "") -> None:
        Event.__init__(self, run_id=run_id, at=at, step=step, attempt=attempt)
        _set(self, "stream", stream)
        _set(self, "line", line)


class StepRetrying(Event):
    """An attempt failed and another will follow after ``delay_s``."""

    __slots__ = FIELDS = ("exit_code", "delay_s", "reason")
    kind: ClassVar[str] = "step.retrying"
    exit_code: int | None
    delay_s: float
    reason: str

    def __init__(self, *, run_id: str, at: float | None = None, step: str | None = None,
                 attempt: int | None = None, exit_code: int | None = None,
                 delay_s: float = 0.0, reason: str = "") -> None:
        Event.__init__(self, run_id=run_id, at=at, step=step, attempt=attempt)
        _set(self, "exit_code", exit_code)
        _set(self, "delay_s", delay_s)
        _set(self, "reason", reason)


class StepSucceeded(Event):
    __slots__ = FIELDS = ("exit_code", "duration_s", "outputs")
    kind: ClassVar[str] = "step.succeeded"
    exit_code: int | None
    duration_s: float
    #: What the attempt wrote to ``$CHRONUM_OUTPUT`` or gave ``ctx.output`` (masked).
    outputs: Mapping[str, str] | None

    def __init__(self, *, run_id: str, at: float | None = None, step: str | None = None,
                 attempt: int | None = None, exit_code: int | None = 0,
                 duration_s: float = 0.0, outputs: Mapping[str, str] | None = None) -> None:
        Event.__init__(self, run_id=run_id, at=at, step=step, attempt=attempt)
        _set(self, "exit_code", exit_code)
        _set(self, "duration_s", duration_s)
        _set(self, "outputs", outputs)


class StepFailed(Event):
    __slots__ = FIELDS = ("exit_code", "duration_s", "reason", "continued", "outputs")
    kind: ClassVar[str] = "step.failed"
    exit_code: int | None
    duration_s: float
    reason: str
    continued: bool
    outputs: Mapping[str, str] | None

    def __init__(self, *, run_id: str, at: float | None = None, step: str | None = None,
                 attempt: int | None = None, exit_code: int | None = None,
                 duration_s: float = 0.0, reason: str = "", continued: bool = False,
                 outputs: Mapping[str, str] | None = None) -> None:
        Event.__init__(self, run_id=run_id, at=at, step=step, attempt=attempt)
        _set(self, "exit_code", exit_code)
        _set(self, "duration_s", duration_s)
        _set(self, "reason", reason)
        _set(self, "continued", continued)
        _set(self, "outputs", outputs)


class StepSkipped(Event):
    """Never started: ``status`` is ``skipped`` or ``upstream_failed``."""

    __slots__ = FIELDS = ("status", "reason")
    kind: ClassVar[str] = "step.skipped"
    status: str
    reason: str

    def __init__(self, *, run_id: str, at: float | None = None, step: str | None = None,
                 attempt: int | None = None, status: str = "skipped", reason: str = "") -> None:
        Event.__init__(self, run_id=run_id, at=at, step=step, attempt=attempt)
        _set(self, "status", status)
        _set(self, "reason", reason)


class StepCached(Event):
    """Kept from an earlier run (resume, a cache hit, ``--from``/``--only``); ``reason`` says
    why (empty: kept on resume)."""

    __slots__ = FIELDS = ("from_run", "reason")
    kind: ClassVar[str] = "step.cached"
    from_run: str
    reason: str

    def __init__(self, *, run_id: str, at: float | None = None, step: str | None = None,
                 attempt: int | None = None, from_run: str = "", reason: str = "") -> None:
        Event.__init__(self, run_id=run_id, at=at, step=step, attempt=attempt)
        _set(self, "from_run", from_run)
        _set(self, "reason", reason)


class StepCancelled(Event):
    __slots__ = FIELDS = ("exit_code", "duration_s", "reason")
    kind: ClassVar[str] = "step.cancelled"
    exit_code: int | None
    duration_s: float
    reason: str

    def __init__(self, *, run_id: str, at: float | None = None, step: str | None = None,
                 attempt: int | None = None, exit_code: int | None = None,
                 duration_s: float = 0.0, reason: str = "") -> None:
        Event.__init__(self, run_id=run_id, at=at, step=step, attempt=attempt)
        _set(self, "exit_code", exit_code)
        _set(self, "duration_s", duration_s)
        _set(self, "reason", reason)


class StepSpawned(Event):
    """An attempt started a process group (``pgid``, its leader's start time ``proc_start``)
    or a container: what resume or ``chronum cancel`` stops if the runner dies first."""

    __slots__ = FIELDS = ("pgid", "proc_start", "container")
    kind: ClassVar[str] = "step.spawned"
    pgid: int | None
    proc_start: str | None
    container: str | None

    def __init__(self, *, run_id: str, at: float | None = None, step: str | None = None,
                 attempt: int | None = None, pgid: int | None = None,
                 proc_start: str | None = None, container: str | None = None) -> None:
        Event.__init__(self, run_id=run_id, at=at, step=step, attempt=attempt)
        _set(self, "pgid", pgid)
        _set(self, "proc_start", proc_start)
        _set(self, "container", container)


class RunFinished(Event):
    __slots__ = FIELDS = ("status", "duration_s", "n_failed", "reason", "n_continued")
    kind: ClassVar[str] = "run.finished"
    status: str
    duration_s: float
    n_failed: int
    #: Why the run ended so, when a step's state does not say it ("run timed out after 2h").
    reason: str
    #: Failed steps with ``continueOnError``: a run with only those stays ``succeeded``.
    n_continued: int

    def __init__(self, *, run_id: str, at: float | None = None, step: str | None = None,
                 attempt: int | None = None, status: str = "succeeded",
                 duration_s: float = 0.0, n_failed: int = 0, reason: str = "",
                 n_continued: int = 0) -> None:
        Event.__init__(self, run_id=run_id, at=at, step=step, attempt=attempt)
        _set(self, "status", status)
        _set(self, "duration_s", duration_s)
        _set(self, "n_failed", n_failed)
        _set(self, "reason", reason)
        _set(self, "n_continued", n_continued)


class StepExpanded(Event):
    """A fan-out step's items are known: it runs as ``instances`` (``step[0]``, ...), one per
    item; ``items`` holds each item as JSON, in the same order."""

    __slots__ = FIELDS = ("instances", "items")
    kind: ClassVar[str] = "step.expanded"
    instances: tuple[str, ...]
    items: tuple[str, ...]

    def __init__(self, *, run_id: str, at: float | None = None, step: str | None = None,
                 attempt: int | None = None, instances: tuple[str, ...] = (),
                 items: tuple[str, ...] = ()) -> None:
        Event.__init__(self, run_id=run_id, at=at, step=step, attempt=attempt)
        _set(self, "instances", instances)
        _set(self, "items", items)


EVENT_KINDS = tuple(
    cls.kind
    for cls in (RunStarted, StepStarted, LogLine, StepRetrying, StepSucceeded, StepFailed,
                StepSkipped, StepCached, StepCancelled, StepSpawned, RunFinished, StepExpanded)
)

Subscriber = Callable[[Event], None]


def _report(subscriber: Subscriber, exc: BaseException) -> None:
    """Once per subscriber: by its ``label`` when it has one (``the events file PATH``),
    else by its function's name, never by an ``<object at 0x...>`` repr."""
    label = getattr(subscriber, "label", None)
    if isinstance(label, str) and label:
        why = "disk full" if getattr(exc, "errno", None) == errno.ENOSPC else (
            getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
        logger.warning("%s: %s; it has been detached, the run goes on", label, why)
        return
    name = getattr(subscriber, "__qualname__", None) or type(subscriber).__qualname__
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
