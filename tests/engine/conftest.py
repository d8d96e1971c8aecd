"""A fake executor and a jumping clock: engine tests run instantly and deterministically.

The fake is only for the scheduler's own logic; every behaviour here is also covered with real
subprocesses in tests/executors and tests/cli.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from chronum.engine import Clock
from chronum.eventbus import Event, EventBus
from chronum.executors import ExecutorRegistry, Result, StepContext
from chronum.model import Backoff, Flow, RetryPolicy, Step


class JumpClock(Clock):
    """Sleeps return at once; the clock jumps forward by the slept amount."""

    def __init__(self) -> None:
        self.t = 1_000_000.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


@dataclass
class FakeExecutor:
    """Scripted by ``step.options``: ``codes`` (exit code per attempt, last one repeats),
    ``hang`` (never finish), ``value`` (returned on success), ``gate`` (an asyncio.Event name
    in ``shared`` to wait for)."""

    step_keys: ClassVar[frozenset[str]] = frozenset({"codes", "hang", "value"})
    log: list[tuple[str, int]] = field(default_factory=list)
    running: int = 0
    peak: int = 0
    seen_inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen_env: dict[str, dict[str, str]] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)

    async def execute(self, step: Step, ctx: StepContext) -> Result:
        self.log.append((step.name, ctx.attempt))
        self.seen_inputs[step.name] = dict(ctx.inputs)
        self.seen_env[step.name] = dict(ctx.env)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(0)
            if step.options.get("hang"):
                await asyncio.Event().wait()
            codes = step.options.get("codes", [0])
            code = codes[min(ctx.attempt, len(codes)) - 1]
            ctx.log("stdout", f"{step.name} attempt {ctx.attempt}")
            return Result(code, value=step.options.get("value"))
        except asyncio.CancelledError:
            self.cancelled.append(step.name)
            raise
        finally:
            self.running -= 1


def make_flow(*steps: Step, **options: Any) -> Flow:
    return Flow(name=options.pop("name", "t"), steps=tuple(steps), **options)


def fake(name: str, needs: Iterable[str] = (), retry: int = 0, **opts: Any) -> Step:
    extra = {k: opts.pop(k) for k in list(opts) if k in FakeExecutor.step_keys}
    backoff = opts.pop("backoff", Backoff(base=1, factor=2, max=60, jitter="none"))
    exit_codes = opts.pop("exit_codes", None)
    return Step(name=name, executor="fake", needs=tuple(needs),
                retry=RetryPolicy(limit=retry, backoff=backoff, exit_codes=exit_codes),
                options=extra, **opts)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self, step: str | None = None) -> list[str]:
        return [e.kind for e in self.events if step is None or e.step == step]

    def started_order(self) -> list[str]:
        return [e.step for e in self.events if e.kind == "step.started" and e.step]


@pytest.fixture
def executor() -> FakeExecutor:
    return FakeExecutor()


@pytest.fixture
def registry(executor: FakeExecutor) -> ExecutorRegistry:
    reg = ExecutorRegistry(builtins={}, entry_points=False)
    reg.register("fake", lambda: executor)
    return reg


@pytest.fixture
def clock() -> JumpClock:
    return JumpClock()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def bus(recorder: Recorder) -> EventBus:
    b = EventBus()
    b.subscribe(recorder)
    return b
