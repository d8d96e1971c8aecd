"""The executor contract.

An executor runs one attempt of one step: ``await executor.execute(step, ctx)`` returns a
``Result``. The engine owns timeouts and cancellation: it cancels the ``execute`` task, and the
executor must then stop everything it started (a subprocess's whole process group, a container,
a future) before letting ``CancelledError`` propagate. Output goes line by line to ``ctx.log``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from ..model import Flow, Step

__all__ = ["Executor", "LogSink", "Result", "StepContext"]

#: ``log(stream, line)``: ``stream`` is ``"stdout"`` or ``"stderr"``, ``line`` has no newline.
LogSink = Callable[[str, str], None]


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


@runtime_checkable
class Executor(Protocol):
    #: Step keys this executor accepts beyond the common ones (``image`` for docker, say).
    step_keys: ClassVar[frozenset[str]]

    async def execute(self, step: Step, ctx: StepContext) -> Result: ...
