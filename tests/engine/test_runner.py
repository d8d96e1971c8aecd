"""The scheduler's semantics (DESIGN §3) with a fake executor and a jumping clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chronum.engine import ReusePlan, backoff_delay, run_flow, seed_for
from chronum.eventbus import EventBus, StepRetrying, StepSkipped, StepStarted
from chronum.model import Backoff

from .conftest import FakeExecutor, JumpClock, Recorder, fake, make_flow


def go(flow: Any, registry: Any, bus: EventBus, clock: JumpClock, **kw: Any) -> Any:
    return asyncio.run(run_flow(flow, run_id="r1", bus=bus, executors=registry, clock=clock,
                                base_env={}, **kw))


def test_ready_steps_start_in_file_order(registry, bus, clock, recorder):
    # needs may name later steps; readiness is decided by file order among ready steps
    flow = make_flow(fake("d", needs=["b", "c"]), fake("c", needs=["a"]), fake("b", needs=["a"]),
                     fake("a"), fake("e"))
    out = go(flow, registry, bus, clock)
    assert out.status == "succeeded"
    # when a ends, c, b and e are ready: they go in file order, and d (first in the file)
    # jumps ahead of e as soon as it is ready
    assert recorder.started_order() == ["a", "c", "b", "d", "e"]


@pytest.mark.parametrize("limit", [1, 2, 5], ids=["mp1", "mp2", "mp5"])
def test_max_parallel_bounds_concurrency(registry, bus, clock, executor, limit):
    flow = make_flow(*[fake(f"s{i}") for i in range(12)], max_parallel=limit)
    go(flow, registry, bus, clock)
    assert executor.peak == limit


def test_steps_released_later_use_every_slot(registry, bus, clock, executor, recorder):
    # one step ready at the start, then a fan-out: parallelism comes from later releases too
    flow = make_flow(fake("root"), *[fake(f"s{i}", needs=["root"]) for i in range(6)],
                     fake("join", needs=[f"s{i}" for i in range(6)]), max_parallel=3)
    out = go(flow, registry, bus, clock)
    assert out.status == "succeeded"
    assert executor.peak == 3
    assert recorder.started_order() == ["root", *[f"s{i}" for i in range(6)], "join"]


def test_failure_halts_downstream_and_independent_branches_go_on(registry, bus, clock, recorder):
    flow = make_flow(fake("a", codes=[3]), fake("b", needs=["a"]), fake("c", needs=["b"]),
                     fake("x"), fake("y", needs=["x"]))
    out = go(flow, registry, bus, clock)
    assert out.status == "failed"
    assert out.states == {"a": "failed", "b": "upstream_failed", "c": "upstream_failed",
                          "x": "succeeded", "y": "succeeded"}
    skipped = {e.step: e.reason for e in recorder.events if isinstance(e, StepSkipped)}
    assert skipped == {"b": "needs 'a', which did not succeed",
                       "c": "needs 'b', which did not succeed"}


def test_continue_on_error_counts_as_done(registry, bus, clock):
    flow = make_flow(fake("a", codes=[1], continue_on_error=True), fake("b", needs=["a"]))
    out = go(flow, registry, bus, clock)
    assert out.states == {"a": "failed", "b": "succeeded"}
    assert out.status == "succeeded"


def test_stop_on_fail_cancels_running_and_skips_the_rest(registry, bus, clock, executor,
                                                         recorder):
    flow = make_flow(fake("slow", hang=True), fake("bad", codes=[2]), fake("later"),
                     max_parallel=2, stop_on_fail=True)
    out = go(flow, registry, bus, clock)
    assert out.status == "failed"
    assert out.states == {"slow": "cancelled", "bad": "failed", "later": "skipped"}
    assert executor.cancelled == ["slow"]
    reasons = {e.step: e.reason for e in recorder.events if isinstance(e, StepSkipped)}
    assert reasons == {"later": "stopOnFail: step 'bad' failed"}
    assert recorder.kinds()[-1] == "run.finished"


def test_retries_follow_the_seeded_schedule(registry, bus, clock, recorder):
    backoff = Backoff(base=1, factor=2, max=60, jitter="full")
    flow = make_flow(fake("flaky", retry=3, codes=[1, 1, 1, 0], backoff=backoff), name="f")
    out = go(flow, registry, bus, clock)
    assert out.states == {"flaky": "succeeded"}
    planned = [e.delay_s for e in recorder.events if isinstance(e, StepRetrying)]
    expected = [backoff_delay(backoff, n, seed_for("f", "flaky", "r1", n)) for n in (1, 2, 3)]
    assert planned == expected == clock.slept
    started = [(e.attempt, e.delay_s) for e in recorder.events if isinstance(e, StepStarted)]
    assert started == [(1, 0.0), (2, expected[0]), (3, expected[1]), (4, expected[2])]


def test_retry_gives_up_after_the_limit(registry, bus, clock, executor):
    flow = make_flow(fake("bad", retry=2, codes=[5]))
    out = go(flow, registry, bus, clock)
    assert out.states == {"bad": "failed"}
    assert executor.log == [("bad", 1), ("bad", 2), ("bad", 3)]


def test_retry_only_for_listed_exit_codes(registry, bus, clock, executor):
    flow = make_flow(fake("a", retry=3, codes=[75, 2, 0], exit_codes=(75,)))
    out = go(flow, registry, bus, clock)
    assert out.states == {"a": "failed"}
    assert executor.log == [("a", 1), ("a", 2)]


@pytest.mark.parametrize(
    ("jitter", "attempt", "lo", "hi"),
    [("none", 1, 1.0, 1.0), ("none", 3, 4.0, 4.0), ("none", 10, 60.0, 60.0),
     ("full", 3, 0.0, 4.0), ("equal", 3, 2.0, 4.0)],
    ids=["none-1", "none-3", "none-capped", "full-3", "equal-3"],
)
def test_backoff_delay_bounds(jitter, attempt, lo, hi):
    b = Backoff(base=1, factor=2, max=60, jitter=jitter)
    for run in range(50):
        d = backoff_delay(b, attempt, seed_for("f", "s", f"run{run}", attempt))
        assert lo <= d <= hi


def test_backoff_is_replayable_and_varies_by_run():
    b = Backoff(jitter="full")
    first = [backoff_delay(b, 2, seed_for("f", "s", f"r{i}", 2)) for i in range(20)]
    again = [backoff_delay(b, 2, seed_for("f", "s", f"r{i}", 2)) for i in range(20)]
    assert first == again
    assert len(set(first)) == 20


def test_timeout_is_exit_code_124_and_retried(registry, bus, clock, executor, recorder):
    flow = make_flow(fake("stuck", hang=True, timeout=0.05, retry=1))
    out = go(flow, registry, bus, clock)
    assert out.states == {"stuck": "failed"}
    assert executor.cancelled == ["stuck", "stuck"]
    failed = [e for e in recorder.events if e.kind == "step.failed"]
    assert failed[0].exit_code == 124
    assert failed[0].reason == "timed out after 0.05s"


def test_cancelling_the_run_stops_steps_and_records_cancelled(registry, bus, clock, executor,
                                                              recorder):
    flow = make_flow(fake("a", hang=True), fake("b", needs=["a"]), fake("c", hang=True),
                     max_parallel=2)

    async def main() -> None:
        task = asyncio.ensure_future(run_flow(flow, run_id="r1", bus=bus, executors=registry,
                                              clock=clock, base_env={}))
        while executor.running < 2:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert sorted(executor.cancelled) == ["a", "c"]
    finished = recorder.events[-1]
    assert finished.kind == "run.finished" and finished.data["status"] == "cancelled"
    assert {e.step for e in recorder.events if e.kind == "step.cancelled"} == {"a", "c"}
    assert [(e.step, e.data["status"]) for e in recorder.events if e.kind == "step.skipped"] \
        == [("b", "skipped")]


def test_a_raising_subscriber_is_detached_and_the_run_goes_on(registry, clock, recorder):
    reports: list[str] = []
    bus = EventBus(on_error=lambda sub, exc: reports.append(str(exc)))
    calls = []

    def broken(event: Any) -> None:
        calls.append(event.kind)
        raise ValueError("boom")

    bus.subscribe(broken)
    bus.subscribe(recorder)
    out = go(make_flow(fake("a"), fake("b")), registry, bus, clock)
    assert out.status == "succeeded"
    assert reports == ["boom"] and calls == ["run.started"]
    assert recorder.kinds()[-1] == "run.finished"


def test_a_critical_subscriber_that_fails_fails_the_run(registry, clock, executor):
    bus = EventBus()

    def store(event: Any) -> None:
        if event.kind == "step.succeeded":
            raise OSError("disk full")

    bus.subscribe(store, critical=True)
    flow = make_flow(fake("a"), fake("b", hang=True), max_parallel=2)
    with pytest.raises(OSError, match="disk full"):
        asyncio.run(run_flow(flow, run_id="r1", bus=bus, executors=registry, clock=clock,
                             base_env={}))
    assert executor.cancelled == ["b"]


def test_values_flow_to_dependents_and_params_reach_env(registry, bus, clock, executor):
    flow = make_flow(fake("load", value=[1, 2]), fake("use", needs=["load"]),
                     params={"region": "eu", "dry-run": "1"}, env={"STAGE": "dev"})
    out = go(flow, registry, bus, clock, params={"region": "us", "dry-run": "1"})
    assert out.outputs == {"load": [1, 2]}
    assert executor.seen_inputs["use"] == {"load": [1, 2]}
    env = executor.seen_env["use"]
    assert env["CHRONUM_PARAM_REGION"] == "us"
    assert env["CHRONUM_PARAM_DRY_RUN"] == "1"
    assert env["STAGE"] == "dev" and env["CHRONUM_STEP"] == "use"


def test_cached_steps_are_not_run(registry, bus, clock, executor, recorder):
    flow = make_flow(fake("a", value=1), fake("b", needs=["a"]), fake("c", needs=["b"]))
    out = go(flow, registry, bus, clock,
             plan=ReusePlan("r0", kept={"a": "r0", "b": "r0"}, values={"a": 1}))
    assert executor.log == [("c", 1)]
    assert out.states == {"a": "cached", "b": "cached", "c": "succeeded"}
    assert [e.data["from_run"] for e in recorder.events if e.kind == "step.cached"] \
        == ["r0", "r0"]


def test_an_executor_that_raises_fails_only_its_step(registry, bus, clock, executor,
                                                     recorder):
    async def broken(step: Any, ctx: Any) -> Any:
        raise RuntimeError("bug in plugin")

    registry.register("broken", lambda: type("B", (), {"execute": staticmethod(broken),
                                                       "step_keys": frozenset()})())
    from chronum.model import Step

    flow = make_flow(Step(name="x", executor="broken"), fake("y"))
    out = go(flow, registry, bus, clock)
    assert out.states == {"x": "failed", "y": "succeeded"}
    assert "bug in plugin" in out.errors["x"]
    assert any(e.kind == "step.log" and "RuntimeError" in e.data["line"]
               for e in recorder.events)


def test_recorder_sees_events_in_order_for_one_step(registry, bus, clock, recorder):
    go(make_flow(fake("a")), registry, bus, clock)
    assert recorder.kinds() == ["run.started", "step.started", "step.log", "step.succeeded",
                                "run.finished"]


def test_fake_executor_is_only_used_here(executor: FakeExecutor, recorder: Recorder):
    # the fake must not leak into the default registry used by real runs
    from chronum.executors import default_registry

    assert "fake" not in default_registry
