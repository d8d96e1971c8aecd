"""The scheduler: one coroutine owns all the state of a run.

It never owns the event loop: ``await run_flow(...)`` runs on whatever loop is running (a
terminal's ``asyncio.run``, a Jupyter kernel's loop). Each step runs as a task that makes its
attempts, waits its backoff and reports through the event bus; the scheduler decides what starts
next, in file order, and what is halted when something fails.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import re
import threading
import time
import traceback
from collections import ChainMap
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from .._args import format_duration
from ..eventbus import (
    EventBus,
    LogLine,
    RunFinished,
    RunStarted,
    StepCached,
    StepCancelled,
    StepFailed,
    StepRetrying,
    StepSkipped,
    StepSpawned,
    StepStarted,
    StepSucceeded,
)
from ..executors import Executor, ExecutorRegistry, Result, StepContext, default_registry
from ..model import TIMEOUT_EXIT_CODE, Flow, Step
from . import outputs as _outputs
from .fanout import FanOuts
from .handlers import Handlers
from .masking import Masker, missing_secrets, read_secrets, secret_names
from .plan import ReusePlan
from .retry import backoff_delay, seed_for

logger = logging.getLogger("chronum")

__all__ = ["Clock", "RunOutcome", "SystemClock", "run_environment", "run_flow", "step_environment"]


_DONE_OK = frozenset({"succeeded", "cached"})


class Clock:
    """Time as the engine sees it; tests pass a clock that jumps instead of sleeping."""

    def now(self) -> float:
        raise NotImplementedError

    def monotonic(self) -> float:
        raise NotImplementedError

    async def sleep(self, seconds: float) -> None:
        raise NotImplementedError


class SystemClock(Clock):
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class RunOutcome(NamedTuple):
    """How a run ended."""

    run_id: str
    status: str
    states: dict[str, str]
    outputs: dict[str, Any]
    started_at: float
    finished_at: float
    errors: dict[str, str]


_PARAM_NAME = re.compile(r"[^A-Za-z0-9]")


def run_environment(flow: Flow, run_id: str, params: Mapping[str, str],
                    base: Mapping[str, str]) -> dict[str, str]:
    """What every step of a run sees: the process env, the flow's env, params, the run id.

    Params reach steps only as ``CHRONUM_PARAM_<NAME>`` variables, never as text substituted
    into a command, so a parameter value can never inject shell syntax. Every secret the flow
    names is taken out: ``step_environment`` gives each step back only the secrets it asks for.
    """
    env = dict(base)
    for name in secret_names(flow):
        env.pop(name, None)
    env.update(flow.env)
    for name, value in params.items():
        env["CHRONUM_PARAM_" + _PARAM_NAME.sub("_", name).upper()] = value
    env["CHRONUM_RUN_ID"] = run_id
    env["CHRONUM_FLOW"] = flow.name
    return env


def step_environment(run_env: Mapping[str, str], step: Step, attempt: int,
                     secrets: Mapping[str, str] | None = None,
                     extra: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """The whole environment of one attempt: the run's, the step's own env, then the
    ``secrets`` (name to value) it gets; ``extra`` (``CHRONUM_OUTPUT``, the outputs of the
    steps it needs) over all of them.

    A layered view, not a copy: most steps (in-process calls) never read it, and a process
    step copies it once when it spawns.
    """
    own = {"CHRONUM_STEP": step.name, "CHRONUM_ATTEMPT": str(attempt)}
    if extra:
        own.update(extra)
    layers: list[Mapping[str, str]] = [own]
    if secrets:
        layers.append(secrets)
    if step.env:
        layers.append(step.env)
    layers.append(run_env)
    return ChainMap(*layers)  # type: ignore[arg-type]  # ChainMap only reads these


class _StepLog:
    """``ctx.log`` of one attempt: masks each line before it becomes an event, so every
    observer of the bus (store, log files, events file, terminal, notebook) sees it masked.

    ``piece(stream, text)`` takes a piece of a line an executor had to cut (a line longer than
    it keeps whole); the next call for that stream continues the line. The end of a piece that
    may begin a secret is held back and masked with what follows, so a secret straddling the
    cut never appears in two unmasked halves.
    """

    __slots__ = ("_attempt", "_carry", "_clock", "_emit", "_lock", "_loop", "_loop_thread",
                 "_mask", "_run_id", "_step")

    def __init__(self, run: _Run, step: str, attempt: int) -> None:
        self._run_id, self._step, self._attempt, self._clock = run.run_id, step, attempt, run.clock
        self._loop, self._loop_thread = run.loop, run.loop_thread
        self._mask = run.mask if run.mask else None
        self._emit = run.emit_log
        self._carry: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, stream: str, line: str) -> None:
        if self._mask is not None:
            if self._carry:
                with self._lock:
                    line = self._carry.pop(stream, "") + line
            line = self._mask(line)
        self._send(stream, line)

    def piece(self, stream: str, text: str) -> None:
        if self._mask is None:
            self._send(stream, text)
            return
        with self._lock:
            done, rest = self._mask.split(self._carry.pop(stream, "") + text)
            if rest:
                self._carry[stream] = rest
        if done:
            self._send(stream, self._mask(done))

    def _send(self, stream: str, line: str) -> None:
        event = LogLine(run_id=self._run_id, at=self._clock.now(), step=self._step,
                        attempt=self._attempt, stream=stream, line=line)
        if threading.get_ident() == self._loop_thread:
            self._emit(event)
        else:  # print() from a sync step in a worker thread: observers live on the loop
            self._loop.call_soon_threadsafe(self._emit, event)


class _Run:
    """State of one run; only the scheduler coroutine mutates it."""

    def __init__(self, flow: Flow, run_id: str, bus: EventBus, executors: ExecutorRegistry,
                 clock: Clock, params: Mapping[str, str], max_parallel: int, stop_on_fail: bool,
                 grace: float, extras: Mapping[str, Any], base_env: Mapping[str, str],
                 on_output: Callable[[str, Any], None] | None = None,
                 durable: Callable[[], Awaitable[None]] | None = None) -> None:
        self.flow = flow
        self.on_output = on_output
        self.durable = durable
        self.run_id = run_id
        self.bus = bus
        self.executors = executors
        self.clock = clock
        self.params = dict(params)
        self.max_parallel = max(1, max_parallel)
        self.stop_on_fail = stop_on_fail
        self.grace = grace
        self.extras = extras
        self.run_env = run_environment(flow, run_id, self.params, base_env)
        self.secrets = read_secrets(flow, base_env)
        self.mask = Masker(self.secrets.values())
        self.position = {s.name: i for i, s in enumerate(flow.steps)}
        self.dependents: dict[str, list[str]] = {s.name: [] for s in flow.steps}
        for s in flow.steps:
            for need in s.needs:
                self.dependents[need].append(s.name)
        self.waiting_on = {s.name: len(set(s.needs)) for s in flow.steps}
        self.states: dict[str, str] = {s.name: "pending" for s in flow.steps}
        self.outputs: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.ready: list[int] = []
        #: Slot tasks (at most ``max_parallel``) and the step each is running now.
        self.running: dict[asyncio.Task[None], str] = {}
        #: One future per idle slot, resolved when there may be something new to do.
        self._idle: list[asyncio.Future[None]] = []
        self.halted = False
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        self._cwd: dict[str | None, Path] = {}
        #: The store could not record a log line: the run stops and fails with this error.
        self.fatal: BaseException | None = None
        #: Steps whose log file could not be written, and why: each fails with that reason.
        self.log_failed: dict[str, str] = {}
        self._executor_cache: dict[str, Executor] = {}
        #: Outputs of each step that wrote some (masked): for env, ``if:`` and the record.
        self.step_outputs: dict[str, Mapping[str, str]] = {}
        self.output_files = _outputs.OutputFiles()
        #: ``if:`` conditions and the handlers (``if: failure()``, ``if: always()``).
        self.handlers = Handlers(self)
        #: Why the run ended as it did when no step says it (a run timeout).
        self.run_reason = ""
        #: The run was cancelled (Ctrl-C, Stop, its timeout): ``cancelled()`` holds.
        self.cancelled = False
        self.plan = ReusePlan()
        #: The fan-out steps (``engine/fanout.py``); None when the flow has none.
        self.fan = FanOuts(self) if any(s.fans_out for s in flow.steps) else None

    # -- bookkeeping -------------------------------------------------------------------

    def executor(self, name: str) -> Executor:
        ex = self._executor_cache.get(name)
        if ex is None:
            ex = self._executor_cache[name] = self.executors.create(name)
        return ex

    def mark_done(self, name: str) -> None:
        """``name`` counts as done for its dependents: release the ones now ready."""
        for dep in self.dependents[name]:
            self.waiting_on[dep] -= 1
            if self.waiting_on[dep] == 0 and self.states[dep] == "pending":
                heapq.heappush(self.ready, self.position[dep])

    def step(self, name: str) -> Step:
        return self.flow.steps[self.position[name]]

    def halt_downstream(self, failed: str, status: str = "upstream_failed") -> None:
        """Mark everything downstream of ``failed`` ``status`` (``upstream_failed``, or
        ``skipped`` below a step whose condition was false), in file order.

        A handler (a step whose ``if:`` checks status: ``failure()``, ``always()``) is not
        marked: it counts ``failed`` as done and decides for itself once all its needs ended;
        what lies below it waits for it.
        """
        handlers = self.handlers.waiting
        seen: set[str] = set()
        released: list[str] = []
        stack = list(self.dependents[failed])
        while stack:
            name = stack.pop()
            if name in handlers:
                released.append(name)  # once per edge from a step that did not succeed
                continue
            if name in seen:
                continue
            seen.add(name)
            if self.states[name] == "pending":
                stack.extend(self.dependents[name])
        for name in sorted(seen, key=self.position.__getitem__):
            if self.states[name] == "pending":
                self.states[name] = status
                culprit = next((n for n in self.step(name).needs
                                if self.states.get(n) in ("failed", "upstream_failed",
                                                          "skipped", "cancelled")), failed)
                reason = (f"upstream {culprit} skipped" if status == "skipped"
                          else f"needs '{culprit}', which did not succeed")
                self.bus.emit(StepSkipped(run_id=self.run_id, at=self.clock.now(), step=name,
                                          status=status, reason=reason))
        for name in released:
            self.waiting_on[name] -= 1
            if self.waiting_on[name] == 0 and self.states[name] == "pending":
                heapq.heappush(self.ready, self.position[name])

    def skip_pending(self, reason: str, keep_handlers: bool = False) -> None:
        """Every step not started is ``skipped``; ``keep_handlers`` leaves the handlers
        (``if: always()``, ``if: failure()``) pending, to run once the others stopped."""
        waiting = self.handlers.waiting if keep_handlers else ()
        if self.fan is not None:
            self.fan.skip_pending(reason)
        for step in self.flow.steps:
            if self.states[step.name] == "pending" and step.name not in waiting:
                self.states[step.name] = "skipped"
                self.bus.emit(StepSkipped(run_id=self.run_id, at=self.clock.now(),
                                          step=step.name, status="skipped", reason=reason))

    # -- one step ----------------------------------------------------------------------

    def context(self, step: Step, attempt: int) -> StepContext:
        log = _StepLog(self, step.name, attempt)

        cwd = self._cwd.get(step.cwd)
        if cwd is None:
            base = Path(self.flow.base_dir)
            cwd = self._cwd[step.cwd] = base if step.cwd is None else base / step.cwd
        inputs = {n: self.outputs[n] for n in step.needs if n in self.outputs}
        extra: dict[str, str] | None = None
        if step.call is None:  # a process: it may write outputs to a file
            extra = {"CHRONUM_OUTPUT": self.output_files.path(step.name, attempt)}
        if self.step_outputs:
            for need in step.needs:
                written = self.step_outputs.get(need)
                if written:
                    extra = extra if extra is not None else {}
                    for key, value in written.items():
                        extra[_outputs.env_name(need, key)] = value
        if self.fan is not None and step.name in self.fan.of:
            inputs.update(self.fan.inputs(step.name))

        def spawned(pgid: int | None, proc_start: str | None, container: str | None) -> None:
            self.emit_log(StepSpawned(run_id=self.run_id, at=self.clock.now(), step=step.name,
                                      attempt=attempt, pgid=pgid, proc_start=proc_start,
                                      container=container))

        return StepContext(
            run_id=self.run_id, flow=self.flow, attempt=attempt,
            env=step_environment(self.run_env, step, attempt, self.step_secrets(step), extra),
            cwd=cwd, params=self.params, inputs=inputs, log=log, grace=self.grace,
            extras=self.extras, on_spawn=spawned,
        )

    def emit_log(self, event: LogLine | StepSpawned) -> None:
        """Log lines arrive from executors' callbacks (pipe readers), where an exception would
        only reach the loop's handler.

        When the step's own log file cannot take the line (``ulimit -f``, a full disk), that
        step fails with the reason and the run goes on to record it; any other error of the
        store stops the run here, once, and fails it with that error.
        """
        if self.fatal is not None or event.step in self.log_failed:
            return
        try:
            self.bus.emit(event)
        except Exception as exc:
            if getattr(exc, "log_of", None) == (self.run_id, event.step) \
                    and self.fail_for_log(event.step, exc):
                return
            self.fatal = exc
            self.halted = True
            for task in self.running:
                task.cancel()

    def fail_for_log(self, name: str | None, exc: Exception) -> bool:
        """Stop step ``name``'s attempt; ``run_step`` records it failed with ``exc``."""
        for task, running in self.running.items():
            if running == name:
                self.log_failed[name] = self.mask(str(exc))
                task.cancel()
                return True
        return False

    def step_secrets(self, step: Step) -> dict[str, str]:
        if not self.secrets:
            return {}
        names = (*self.flow.secrets, *step.secrets)
        return {n: self.secrets[n] for n in names if n in self.secrets}

    def missing(self, step: Step) -> Result | None:
        """A step whose secrets are not all set fails before it starts, without retries."""
        missing = missing_secrets(self.flow, step, self.secrets)
        if not missing:
            return None
        listed = ", ".join(repr(n) for n in missing)
        noun = "secret" if len(missing) == 1 else "secrets"
        verb = "is" if len(missing) == 1 else "are"
        return Result(1, error=f"{noun} {listed} {verb} not set in the environment")

    async def attempt(self, step: Step, ctx: StepContext) -> Result:
        executor = self.executor(step.executor)
        if self.durable is not None:
            # The attempt, and the end of every step whose release let this one start, are on
            # disk before its process or call starts: after a crash, resume re-runs only what
            # was running, never a step whose success a dependent acted on.
            await self.durable()
        try:
            if step.timeout is None:
                return await executor.execute(step, ctx)
            async with asyncio.timeout(step.timeout):
                return await executor.execute(step, ctx)
        except TimeoutError:
            msg = f"timed out after {format_duration(step.timeout or 0.0)}"
            ctx.log("stderr", f"chronum: {msg}; the step's processes were stopped")
            return Result(TIMEOUT_EXIT_CODE, error=msg)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an executor bug must fail the step, not the engine
            for line in traceback.format_exc().splitlines():
                ctx.log("stderr", line)
            return Result(1, error=f"executor {step.executor!r} raised {type(exc).__name__}: {exc}")

    async def run_step(self, step: Step) -> Result:
        attempt, delay = 0, 0.0
        while True:
            attempt += 1
            ctx = self.context(step, attempt)
            started = self.clock.monotonic()
            self.bus.emit(StepStarted(run_id=self.run_id, at=self.clock.now(), step=step.name,
                                      attempt=attempt, delay_s=delay, executor=step.executor,
                                      reason=self.plan.reasons.get(step.name, "")))
            try:
                unset = self.missing(step) if attempt == 1 else None
                result = unset if unset is not None else await self.attempt(step, ctx)
            except asyncio.CancelledError:
                failed = self.log_failed.get(step.name)
                task = asyncio.current_task()
                if failed is not None and not self.halted and task is not None \
                        and task.uncancel() == 0:
                    # Cancelled only because its log could not be written: a failure of the
                    # step with that reason, not a cancelled run.
                    result = Result(1, error=failed)
                    self.bus.emit(StepFailed(
                        run_id=self.run_id, at=self.clock.now(), step=step.name,
                        attempt=attempt, exit_code=1,
                        duration_s=self.clock.monotonic() - started, reason=failed,
                        continued=step.continue_on_error))
                    return result
                self.bus.emit(StepCancelled(
                    run_id=self.run_id, at=self.clock.now(), step=step.name, attempt=attempt,
                    duration_s=self.clock.monotonic() - started, reason=self.cancel_reason))
                raise
            duration = self.clock.monotonic() - started
            written: Mapping[str, str] | None = None
            if ctx.outputs or step.call is None:
                result, written = self.collect(step, ctx, result)
            if result.ok and self.on_output is not None:
                result = self.keep(step, result)
            if result.ok:
                self.bus.emit(StepSucceeded(run_id=self.run_id, at=self.clock.now(),
                                            step=step.name, attempt=attempt,
                                            exit_code=result.exit_code, duration_s=duration,
                                            outputs=written))
                return result
            reason = self.mask(result.error or f"exit code {result.exit_code}")
            if unset is not None:
                ctx.log("stderr", f"chronum: {reason}")
            elif step.retry.should_retry(attempt, result.exit_code) and not self.halted:
                delay = backoff_delay(step.retry.backoff, attempt,
                                      seed_for(self.flow.name, step.name, self.run_id, attempt))
                self.bus.emit(StepRetrying(run_id=self.run_id, at=self.clock.now(),
                                           step=step.name, attempt=attempt,
                                           exit_code=result.exit_code, delay_s=delay,
                                           reason=reason))
                try:
                    await self.clock.sleep(delay)
                except asyncio.CancelledError:
                    # Cancelled (Ctrl-C, stopOnFail) between attempts: the step ends
                    # cancelled, with its event, instead of staying ``retrying`` in a finished run.
                    self.bus.emit(StepCancelled(
                        run_id=self.run_id, at=self.clock.now(), step=step.name,
                        attempt=attempt, exit_code=result.exit_code, duration_s=duration,
                        reason=self.cancel_reason))
                    raise
                if not self.halted:
                    continue
            self.bus.emit(StepFailed(run_id=self.run_id, at=self.clock.now(), step=step.name,
                                     attempt=attempt, exit_code=result.exit_code,
                                     duration_s=duration, reason=reason,
                                     continued=step.continue_on_error, outputs=written))
            return result

    def collect(self, step: Step, ctx: StepContext, result: Result
                ) -> tuple[Result, Mapping[str, str] | None]:
        """The attempt's outputs (its ``$CHRONUM_OUTPUT`` file, then ``ctx.output``), masked;
        outputs that cannot be kept fail the attempt. A step that starts a process and wrote
        outputs has them as its value."""
        path = ctx.env.get("CHRONUM_OUTPUT") if step.call is None else None
        try:
            written = _outputs.read(path) if path else {}
            if ctx.outputs:
                written.update(ctx.outputs)
            _outputs.check(written)
        except _outputs.OutputError as exc:
            message = self.mask(str(exc))
            ctx.log("stderr", f"chronum: {message}")
            return (Result(1, error=message) if result.ok else result), None
        finally:
            if path:
                self.output_files.discard(path)
        if not written:
            return result, None
        if self.mask:
            written = {key: self.mask(value) for key, value in written.items()}
        self.step_outputs[step.name] = written
        if result.ok and result.value is None and step.call is None:
            result = Result(result.exit_code, value=dict(written), error=result.error)
        return result, written

    def keep(self, step: Step, result: Result) -> Result:
        """``on_output`` before success is recorded, so a recorded success has its value kept;
        a value that cannot be kept fails the attempt (and is retried like any failure)."""
        assert self.on_output is not None
        try:
            self.on_output(step.name, result.value)
        except Exception as exc:
            message = self.mask(
                f"cannot keep the value of {step.name!r}: {type(exc).__name__}: {exc}")
            self.bus.emit(LogLine(run_id=self.run_id, at=self.clock.now(), step=step.name,
                                  stream="stderr", line=f"chronum: {message}"))
            return Result(1, error=message)
        return result

    cancel_reason = "run cancelled"

    # -- the loop ----------------------------------------------------------------------

    def next_step(self) -> Step | None:
        """The first ready step in file order, or None (nothing ready, or the run halted)."""
        while self.ready and not self.halted:
            key = heapq.heappop(self.ready)
            if key < len(self.flow.steps):
                step = self.flow.steps[key]
            else:  # an instance of a fan-out step
                assert self.fan is not None
                found = self.fan.instance(key)
                if found is None:
                    continue
                step = found
            if self.states[step.name] == "pending":
                return step
        return None

    async def slot(self) -> None:
        """One of ``max_parallel`` slots: run ready steps one after another until none can
        become ready any more.

        A long-lived slot rather than a task per step: finishing a step and starting the next
        happen in the same turn of the loop, without a task to create and wait for.
        """
        me = asyncio.current_task()
        assert me is not None
        while True:
            step = self.next_step()
            if step is None:
                if not self.running or self.halted:
                    self.wake_all()  # the run is over for every slot
                    return
                idle = self.loop.create_future()
                self._idle.append(idle)
                try:
                    await idle
                except asyncio.CancelledError:
                    return
                continue
            if step.condition is not None and not self.handlers.admit(step):
                if self.ready:
                    self.wake_all()  # skipped: what it released is ready now
                continue
            name = step.name
            if self.fan is not None and step.fans_out:
                self.fan.expand(step)  # its instances join the ready queue
                self.wake_all()
                continue
            self.states[name] = "running"
            self.running[me] = name
            try:
                result = await self.run_step(step)
            except asyncio.CancelledError:
                del self.running[me]
                self.states[name] = "cancelled"
                self.wake_all()
                return
            del self.running[me]
            self.finish(step, result)
            if self.ready or not self.running or self.halted:
                self.wake_all()

    def wake_all(self) -> None:
        idle, self._idle = self._idle, []
        for future in idle:
            if not future.done():
                future.set_result(None)

    def finish(self, step: Step, result: Result) -> None:
        if self.fan is not None and self.fan.finish(step, result):
            return
        name = step.name
        if result.ok:
            self.states[name] = "succeeded"
            if result.value is not None:
                self.outputs[name] = result.value
            self.mark_done(name)
            return
        self.states[name] = "failed"
        self.errors[name] = self.mask(result.error or f"exit code {result.exit_code}")
        if step.continue_on_error:
            self.mark_done(name)
            return
        self.halt_downstream(name)
        if self.stop_on_fail and not self.halted:
            self.halted = True
            self.cancel_reason = f"stopOnFail: step '{name}' failed"
            for other in self.running:
                other.cancel()
            self.skip_pending(f"stopOnFail: step '{name}' failed", keep_handlers=True)

    def final_status(self, cancelled: bool) -> str:
        if cancelled:
            return "cancelled"
        if self.run_reason:  # the run's own timeout
            return "failed"
        any_failed = False
        for step in self.flow.steps:
            state = self.states[step.name]
            if state == "failed" and not step.continue_on_error:
                return "failed"
            if state in ("upstream_failed", "cancelled"):
                return "failed"
            any_failed = any_failed or state == "failed"
        # Failures under continueOnError leave the run succeeded, as in GitHub Actions, but
        # not when nothing succeeded at all (an instance of a fan-out step counts).
        any_ok = any(state in _DONE_OK for state in self.states.values())
        return "failed" if any_failed and not any_ok else "succeeded"


async def run_flow(
    flow: Flow,
    *,
    run_id: str,
    bus: EventBus,
    executors: ExecutorRegistry | None = None,
    clock: Clock | None = None,
    params: Mapping[str, str] | None = None,
    max_parallel: int | None = None,
    stop_on_fail: bool | None = None,
    plan: ReusePlan | None = None,
    grace: float = 5.0,
    extras: Mapping[str, Any] | None = None,
    base_env: Mapping[str, str] | None = None,
    on_output: Callable[[str, Any], None] | None = None,
    durable: Callable[[], Awaitable[None]] | None = None,
) -> RunOutcome:
    """Run ``flow`` to the end and return how it went.

    ``plan`` keeps steps from earlier runs (resume): they are not run, count as succeeded, and
    their values reach the steps that need them. Cancelling the coroutine (Ctrl-C, the
    notebook's Stop button) stops every running step, records the run ``cancelled`` and
    re-raises ``CancelledError``.
    ``on_output(step, value)`` is called when a step succeeds, before its success is emitted
    (``persist: true`` writes the value there); if it raises, the attempt fails instead.
    ``durable()`` is awaited after each attempt is announced and before it starts: the store's
    durability barrier, done once every event emitted so far is committed.
    """
    clock = clock or SystemClock()
    plan = plan or ReusePlan()
    run = _Run(
        flow, run_id, bus, executors or default_registry, clock,
        params if params is not None else flow.params,
        flow.max_parallel if max_parallel is None else max_parallel,
        flow.stop_on_fail if stop_on_fail is None else stop_on_fail,
        grace, extras or {}, os.environ if base_env is None else base_env, on_output, durable,
    )
    run.plan = plan
    started_at, started = clock.now(), clock.monotonic()
    bus.emit(RunStarted(run_id=run_id, at=started_at, flow=flow.name, steps=flow.step_names,
                        params={k: run.mask(v) for k, v in run.params.items()},
                        parent_run_id=plan.parent_run_id,
                        source=flow.source, max_parallel=run.max_parallel))
    for step in flow.steps:
        from_run = plan.kept.get(step.name)
        if from_run is not None:
            run.states[step.name] = "cached"
            if step.name in plan.values:
                run.outputs[step.name] = plan.values[step.name]
            written = plan.outputs.get(step.name)
            if written:  # for CHRONUM_OUT_* and if:, and as the value of a process step
                run.step_outputs[step.name] = written
                if step.call is None:
                    run.outputs.setdefault(step.name, dict(written))
            bus.emit(StepCached(run_id=run_id, at=clock.now(), step=step.name,
                                from_run=from_run, reason=plan.cached_reasons.get(step.name, "")))
        elif step.name in plan.skipped:  # not selected (``--only``)
            run.states[step.name] = "skipped"
            bus.emit(StepSkipped(run_id=run_id, at=clock.now(), step=step.name,
                                 status="skipped", reason=plan.skipped[step.name]))
    for step in flow.steps:
        if run.states[step.name] == "cached":
            run.mark_done(step.name)
        elif run.waiting_on[step.name] == 0:
            heapq.heappush(run.ready, run.position[step.name])
    # Steps that need a cached step were pushed by mark_done already; next_step dedupes.

    cancelled = False
    to_run = sum(1 for state in run.states.values() if state == "pending")
    if run.fan is not None:  # instances are not counted yet
        to_run = run.max_parallel
    slots = [asyncio.ensure_future(run.slot()) for _ in range(min(run.max_parallel, to_run))]
    deadline = None if flow.timeout is None else run.loop.time() + flow.timeout
    try:
        if slots:
            done, left = await asyncio.wait(slots, timeout=flow.timeout,
                                            return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    raise error  # the store could not write, or the engine has a bug
            if left:
                await _time_out(run, slots)
        if run.fatal is not None:
            raise run.fatal
        if run.handlers.pending():  # stopOnFail halted the run: its handlers still run
            await run.handlers.drain(None, run.cancel_reason, deadline=deadline,
                                     on_deadline=lambda: _timed_out(run))
    except asyncio.CancelledError as exc:
        cancelled = True
        run.halted = True
        run.cancelled = True
        # ``task.cancel(msg)`` gives the reason its steps are recorded with ("kernel shut
        # down", say); a plain cancel keeps "run cancelled".
        why = exc.args[0] if exc.args and isinstance(exc.args[0], str) else None
        if why:
            run.cancel_reason = why
        await _stop_all(run, slots)
        if run.handlers.pending():
            run.skip_pending("run cancelled", keep_handlers=True)
            await run.handlers.drain(run.grace, "run cancelled")
        await _finish_executors(run)
        run.skip_pending(why or "run cancelled")
        run.output_files.close()
        _emit_finished(run, "cancelled", started)
        raise
    except BaseException:
        run.halted = True
        await _stop_all(run, slots)
        await _finish_executors(run)
        run.output_files.close()
        raise
    run.output_files.close()
    await _finish_executors(run)
    status = run.final_status(cancelled)
    _emit_finished(run, status, started)
    return RunOutcome(run_id=run_id, status=status, states=dict(run.states),
                      outputs=dict(run.outputs), started_at=started_at,
                      finished_at=clock.now(), errors=dict(run.errors))


def _timed_out(run: _Run) -> str:
    """Mark the run timed out (its ``timeout:`` passed) and say so."""
    assert run.flow.timeout is not None
    reason = f"run timed out after {format_duration(run.flow.timeout)}"
    run.halted = run.cancelled = True
    run.cancel_reason = run.run_reason = reason
    return reason


async def _time_out(run: _Run, slots: list[asyncio.Task[None]]) -> None:
    """The run's ``timeout:`` passed: stop its steps, give the handlers the kill grace."""
    reason = _timed_out(run)
    await _stop_all(run, slots)
    run.skip_pending(reason, keep_handlers=True)
    if run.handlers.pending():
        await run.handlers.drain(run.grace, reason)


async def _stop_all(run: _Run, slots: list[asyncio.Task[None]]) -> None:
    """Cancel every slot and wait until each has stopped its step's processes."""
    for task in slots:
        task.cancel()
    while True:
        try:
            if slots:
                await asyncio.wait(slots)
            break
        except asyncio.CancelledError:
            continue  # a second Ctrl-C must not leave processes behind
    for name in run.running.values():  # a slot that ended with an error mid-step
        run.states[name] = "cancelled"
    run.running.clear()


async def _finish_executors(run: _Run) -> None:
    """Give each executor its optional ``finish_run(outputs)`` hook, once, as the run ends.

    A dask executor fetches its futures' values into ``outputs`` there and closes its cluster.
    """
    for executor in run._executor_cache.values():
        finish = getattr(executor, "finish_run", None)
        if finish is None:
            continue
        try:
            await asyncio.shield(finish(run.outputs))
        except Exception as exc:  # the run's outcome stands; say why the cleanup failed
            logger.warning("executor cleanup failed: %s: %s", type(exc).__name__, exc)


def _emit_finished(run: _Run, status: str, started: float) -> None:
    n_failed = sum(1 for s in run.states.values() if s == "failed")
    n_continued = sum(1 for s in run.flow.steps
                      if s.continue_on_error and run.states[s.name] == "failed")
    run.bus.emit(RunFinished(run_id=run.run_id, at=run.clock.now(), status=status,
                             duration_s=run.clock.monotonic() - started, n_failed=n_failed,
                             reason=run.run_reason, n_continued=n_continued))
