"""The durability barrier as the engine sees it: awaited after an attempt is announced and
before it starts, so what it commits covers the attempt and every step that released it.

The barrier here is a fake that marks "committed" every event emitted before it returns; the
store's real one (one SQLite commit per loop turn) is tested in tests/store/test_durability.py
and end to end with real processes in tests/reliability.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from chronum.engine import ReusePlan, run_flow
from chronum.errors import StoreError
from chronum.eventbus import Event, EventBus
from chronum.executors import ExecutorRegistry, Result, StepContext
from chronum.model import Step

from .conftest import JumpClock, Recorder, fake, make_flow


class FakeBarrier:
    """Commits (marks) every event emitted before it, one loop turn later, like the store's."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.committed = 0
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        await asyncio.sleep(0)
        self.committed = len(self.recorder.events)


@dataclass
class Probe:
    """An executor that notes, as each attempt starts, which events were committed by then."""

    barrier: FakeBarrier
    step_keys: ClassVar[frozenset[str]] = frozenset({"codes"})
    seen: dict[tuple[str, int], list[Event]] = field(default_factory=dict)

    async def execute(self, step: Step, ctx: StepContext) -> Result:
        self.seen[(step.name, ctx.attempt)] = self.barrier.recorder.events[:self.barrier.committed]
        await asyncio.sleep(0)
        codes = step.options.get("codes", [0])
        return Result(codes[min(ctx.attempt, len(codes)) - 1])


@pytest.fixture
def barrier(recorder: Recorder) -> FakeBarrier:
    return FakeBarrier(recorder)


@pytest.fixture
def probe(barrier: FakeBarrier) -> Probe:
    return Probe(barrier)


@pytest.fixture
def probing(probe: Probe) -> ExecutorRegistry:
    reg = ExecutorRegistry(builtins={}, entry_points=False)
    reg.register("fake", lambda: probe)
    return reg


def go(flow: Any, registry: ExecutorRegistry, bus: EventBus, clock: JumpClock,
       barrier: Any, **kw: Any) -> Any:
    return asyncio.run(run_flow(flow, run_id="r1", bus=bus, executors=registry, clock=clock,
                                base_env={}, durable=barrier, **kw))


def committed_before(probe: Probe, step: str, attempt: int = 1) -> dict[tuple[str, str], int]:
    """(step, kind) -> how many such events were committed when ``step``'s attempt started."""
    counts: dict[tuple[str, str], int] = {}
    for event in probe.seen[(step, attempt)]:
        key = (event.step or "", event.kind)
        counts[key] = counts.get(key, 0) + 1
    return counts


@pytest.mark.parametrize("parallel", [1, 4])
def test_every_attempt_and_what_released_it_are_committed_before_it_starts(
        probing, bus, clock, barrier, probe, parallel):
    # a fan-out and a fan-in: each step's needs ended, and were committed, before it started
    flow = make_flow(fake("root"), *[fake(f"m{i}", needs=["root"]) for i in range(6)],
                     fake("join", needs=[f"m{i}" for i in range(6)]), fake("alone"),
                     max_parallel=parallel)
    out = go(flow, probing, bus, clock, barrier)
    assert out.status == "succeeded"
    assert len(probe.seen) == 9
    for step in flow.steps:
        seen = committed_before(probe, step.name)
        assert seen.get((step.name, "step.started")) == 1, step.name
        for need in step.needs:
            assert seen.get((need, "step.succeeded")) == 1, (step.name, need)


def test_a_failure_a_dependent_goes_on_after_is_committed_first(probing, bus, clock, barrier,
                                                                 probe):
    flow = make_flow(fake("a", codes=[3], continue_on_error=True), fake("b", needs=["a"]))
    go(flow, probing, bus, clock, barrier)
    assert committed_before(probe, "b").get(("a", "step.failed")) == 1


def test_kept_steps_are_committed_before_the_first_start(probing, bus, clock, barrier, probe):
    flow = make_flow(fake("a"), fake("b", needs=["a"]))
    go(flow, probing, bus, clock, barrier, plan=ReusePlan(kept={"a": "r0"}, parent_run_id="r0"))
    assert committed_before(probe, "b").get(("a", "step.cached")) == 1
    assert ("a", 1) not in probe.seen


def test_each_retry_goes_through_the_barrier(probing, bus, clock, barrier, probe):
    flow = make_flow(fake("a", retry=2, codes=[1, 1, 0]))
    out = go(flow, probing, bus, clock, barrier)
    assert out.status == "succeeded"
    assert barrier.calls == 3
    for attempt in (1, 2, 3):
        seen = committed_before(probe, "a", attempt)
        assert seen.get(("a", "step.started")) == attempt
        assert seen.get(("a", "step.retrying"), 0) == attempt - 1


def test_a_barrier_that_cannot_commit_fails_the_run_before_the_step_starts(
        probing, bus, clock, probe):
    async def broken() -> None:
        raise StoreError("cannot write to the Chronum database x.db: the disk is full")

    flow = make_flow(fake("a"), fake("b", needs=["a"]))
    with pytest.raises(StoreError, match="disk is full"):
        go(flow, probing, bus, clock, broken)
    assert probe.seen == {}


def test_cancelling_a_step_waiting_at_the_barrier_records_it_cancelled(probing, bus, clock,
                                                                      recorder, probe):
    async def slow() -> None:
        await asyncio.Event().wait()  # never committed: the run is cancelled while waiting

    async def main() -> None:
        task = asyncio.ensure_future(run_flow(
            make_flow(fake("a")), run_id="r1", bus=bus, executors=probing, clock=clock,
            base_env={}, durable=slow))
        for _ in range(5):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert probe.seen == {}
    assert recorder.kinds("a") == ["step.started", "step.cancelled"]
    assert any(e.kind == "run.finished" and getattr(e, "status", "") == "cancelled"
               for e in recorder.events)
