"""The executor contract.

An executor runs one attempt of one step: ``await executor.execute(step, ctx)`` returns a
``Result``. The engine owns timeouts and cancellation: it cancels the ``execute`` task, and the
executor must then stop everything it started (a subprocess's whole process group, a container,
a future) before letting ``CancelledError`` propagate. Output goes line by line to ``ctx.log``.

An executor that starts a process group or a container says so through ``ctx.spawned`` right
after starting it: if the runner dies (kill -9), that record is how resume and ``chronum
cancel`` find and stop what it left behind.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from ..errors import StepCancelledError
from ..model import Flow, Step

__all__ = ["Executor", "LogSink", "Result", "SpawnSink", "StepContext", "process_start"]

#: ``log(stream, line)``: ``stream`` is ``"stdout"`` or ``"stderr"``, ``line`` has no newline.
LogSink = Callable[[str, str], None]
#: ``on_spawn(pgid, proc_start, container)``: an attempt started a process group or container.
SpawnSink = Callable[[int | None, str | None, str | None], None]


def process_start(pid: int) -> str | None:
    """The start time of ``pid`` (field 22 of ``/proc/<pid>/stat``, clock ticks since boot),
    which tells the process apart from a later one that reuses its pid; None without /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()  # the command name may hold spaces and ")"
    return fields[19] if len(fields) >= 20 else None


@dataclass(frozen=True, slots=True)
class Result:
    """How an attempt ended: ``exit_code`` 0 is success; ``value`` goes to dependents."""

    exit_code: int
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True, slots=True)
class StepContext:
    run_id: str
    flow: Flow
    attempt: int
    #: The complete environment for the step: process env, flow env, step env, params.
    env: Mapping[str, str]
    cwd: Path
    params: Mapping[str, str]
    #: Values returned by the python steps this step needs, by step name.
    inputs: Mapping[str, Any]
    log: LogSink
    #: Seconds between SIGTERM and SIGKILL when the step is stopped.
    grace: float = 5.0
    extras: Mapping[str, Any] = field(default_factory=dict)
    #: Told what the attempt started (``spawned``); None where nobody records it.
    on_spawn: SpawnSink | None = None
    #: What ``output(key, value)`` was given; the engine keeps it with the attempt.
    outputs: dict[str, str] = field(default_factory=dict)

    def output(self, key: str, value: Any) -> None:
        """Set output ``key`` of this step, as a line in ``$CHRONUM_OUTPUT`` would: steps
        that need it read ``CHRONUM_OUT_<STEP>_<KEY>``, and ``if:`` reads
        ``steps.<step>.outputs.<key>``. A value that is not text is kept as JSON."""
        if not isinstance(key, str):
            raise TypeError(f"an output name is a string, not {type(key).__name__}")
        if not isinstance(value, str):
            import json

            value = json.dumps(value, default=str)
        self.outputs[key] = value

    #: Set when the attempt is cancelled or times out (``cancelled``, ``check()``).
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False,
                                          compare=False)

    @property
    def cancelled(self) -> bool:
        """Whether this attempt was cancelled (or timed out): a long loop in a step function
        checks it and returns; Python cannot stop a function's thread from outside."""
        return self.cancel_event.is_set()

    def check(self) -> None:
        """Raise ``StepCancelledError`` if this attempt was cancelled or timed out."""
        if self.cancel_event.is_set():
            step = self.env.get("CHRONUM_STEP", "")
            raise StepCancelledError(f"step {step!r} was cancelled; stopped at ctx.check()")

    def spawned(self, pgid: int | None = None, container: str | None = None) -> None:
        """Record that this attempt started process group ``pgid`` (its leader's pid) and/or
        ``container``; call it right after starting them."""
        if self.on_spawn is not None:
            start = process_start(pgid) if pgid is not None else None
            self.on_spawn(pgid, start, container)


@runtime_checkable
class Executor(Protocol):
    #: Step keys this executor accepts beyond the common ones (``image`` for docker, say).
    step_keys: ClassVar[frozenset[str]]

    async def execute(self, step: Step, ctx: StepContext) -> Result: ...
