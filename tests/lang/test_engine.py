"""The scheduler's side of ``if:``: when a handler is released, and what the fold records.

A fake executor and a jumping clock (tests/engine) keep these exact; the same behaviour runs
against real processes in test_dagu.py.
"""

from __future__ import annotations

import asyncio

from chronum.conditions import parse
from chronum.engine import run_flow
from chronum.eventbus import EventBus
from chronum.executors import ExecutorRegistry
from chronum.state import RunState
from tests.engine.conftest import FakeExecutor, JumpClock, Recorder, fake, make_flow


def when(text: str, name: str, needs=(), **opts):
    return fake(name, needs, condition=parse(text), **opts)


def run(flow, bus: EventBus, registry: ExecutorRegistry, clock: JumpClock, **kw):
    return asyncio.run(run_flow(flow, run_id="r", bus=bus, executors=registry, clock=clock,
                                base_env={}, **kw))


def test_a_handler_reached_by_many_failed_paths_runs_once_after_all_ended(
        bus, registry, clock, executor: FakeExecutor, recorder: Recorder) -> None:
    flow = make_flow(
        fake("a", codes=[1]),
        fake("b", ["a"]),
        fake("c", ["a"]),
        fake("slow", []),
        when("failure()", "h", ["a", "b", "c", "slow"]),
        fake("after", ["h"]),
        max_parallel=2,
    )
    outcome = run(flow, bus, registry, clock)
    assert outcome.states == {"a": "failed", "b": "upstream_failed", "c": "upstream_failed",
                              "slow": "succeeded", "h": "succeeded", "after": "succeeded"}
    assert [name for name, _ in executor.log].count("h") == 1
    assert recorder.started_order().index("h") > recorder.started_order().index("slow")
    assert outcome.status == "failed"


def test_skips_propagate_to_plain_steps_but_not_to_handlers(
        bus, registry, clock, recorder: Recorder) -> None:
    flow = make_flow(
        fake("a"),
        when("params.mode == 'full'", "full", ["a"]),
        fake("plain", ["full"]),
        fake("deeper", ["plain"]),
        when("steps.full.status == 'skipped'", "fallback", ["full"]),
        when("success()", "needs-success", ["full"]),
        params={"mode": "quick"},
    )
    outcome = run(flow, bus, registry, clock)
    assert outcome.states == {"a": "succeeded", "full": "skipped", "plain": "skipped",
                              "deeper": "skipped", "fallback": "succeeded",
                              "needs-success": "skipped"}
    reasons = {e.step: e.reason for e in recorder.events if e.kind == "step.skipped"}
    assert reasons == {"full": "condition false: params.mode == 'full'",
                       "plain": "upstream full skipped", "deeper": "upstream plain skipped",
                       "needs-success": "condition false: success()"}
    assert outcome.status == "succeeded"


def test_continued_failures_count_as_success_and_the_fold_keeps_the_count(
        bus, registry, clock, recorder: Recorder) -> None:
    flow = make_flow(
        fake("a", codes=[3], continue_on_error=True),
        fake("b"),
        when("success()", "ok", ["a"]),
        when("failure()", "handler", ["a"]),
    )
    outcome = run(flow, bus, registry, clock)
    assert outcome.states == {"a": "failed", "b": "succeeded", "ok": "succeeded",
                              "handler": "skipped"}
    assert outcome.status == "succeeded"
    state = RunState.new("r", flow.step_names)
    for event in recorder.events:
        state.apply(event)
    assert (state.status, state.n_continued, state.reason) == ("succeeded", 1, None)


def test_nothing_succeeded_means_failed(bus, registry, clock) -> None:
    flow = make_flow(fake("a", codes=[1], continue_on_error=True),
                     fake("b", codes=[2], continue_on_error=True))
    assert run(flow, bus, registry, clock).status == "failed"


def test_outputs_from_ctx_output_reach_the_fold_and_the_next_step(
        bus, registry, clock, recorder: Recorder) -> None:
    from chronum.executors import Result

    class Writer:
        step_keys = frozenset()

        async def execute(self, step, ctx):
            if step.name == "w":
                ctx.output("rows", 42)
                ctx.output("who", "me")
                return Result(0, value="returned")
            assert ctx.env["CHRONUM_OUT_W_ROWS"] == "42"
            return Result(0)

    registry.register("writer", Writer)
    from dataclasses import replace

    flow = make_flow(replace(fake("w"), executor="writer", call="x:y"),
                     replace(fake("r", ["w"]), executor="writer"),
                     when("steps.w.outputs.rows >= 42", "gated", ["w"]))
    outcome = run(flow, bus, registry, clock)
    assert outcome.states == {"w": "succeeded", "r": "succeeded", "gated": "succeeded"}
    assert outcome.outputs["w"] == "returned"  # a call step keeps its return value
    done = [e for e in recorder.events if e.kind == "step.succeeded" and e.step == "w"]
    assert done[0].outputs == {"rows": "42", "who": "me"}


def test_a_condition_on_params_is_decided_once_but_success_per_step(
        bus, registry, clock) -> None:
    flow = make_flow(
        when("params.mode == 'x'", "e"),
        fake("a", codes=[1]),
        when("failure()", "h", ["a"]),
        when("params.mode == 'x'", "d", ["h"]),  # behind a failure: success() is false
        when("params.mode == 'x'", "f", ["e"]),
        params={"mode": "x"},
    )
    outcome = run(flow, bus, registry, clock)
    assert outcome.states == {"e": "succeeded", "a": "failed", "h": "succeeded",
                              "d": "skipped", "f": "succeeded"}
