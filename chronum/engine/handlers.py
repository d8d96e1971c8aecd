"""``if:`` in a run: conditions evaluated as steps become ready, and the handlers.

A step whose condition checks status (``failure()``, ``always()``, ``cancelled()``,
``steps.X.status``) is a *handler*: a failed or skipped upstream does not mark it
``upstream_failed``; it waits until every step it needs has ended and then decides. Any other
condition means ``success() and (condition)``, as GitHub Actions' ``if:`` does: it is
evaluated only once all its needs succeeded. A false condition makes the step ``skipped``
("condition false: ..."), and the steps below it are skipped too unless they are handlers.

When the run stops early (``stopOnFail``, Ctrl-C or Stop, the run's ``timeout:``), handlers
still pending run after the other steps were stopped: one after another, in file order, and
after a cancel only within the kill grace, so a cleanup cannot hold the terminal forever. The
run's ``timeout:`` bounds the handlers of ``stopOnFail`` too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..conditions import Condition, evaluate, holds, reads
from ..eventbus import StepSkipped
from ..model import Step

if TYPE_CHECKING:
    from .runner import _Run

__all__ = ["Handlers", "StepScope"]

_OK = frozenset({"succeeded", "cached"})
_ENDED = frozenset({"succeeded", "cached", "failed", "skipped", "upstream_failed",
                    "cancelled"})


class StepScope:
    """What the condition of one step reads (``chronum.conditions.Scope``)."""

    __slots__ = ("_run", "_step")

    def __init__(self, run: _Run, step: Step) -> None:
        self._run = run
        self._step = step

    def param(self, name: str) -> str:
        return self._run.params.get(name, "")

    def env(self, name: str) -> str:
        value = self._step.env.get(name)
        return value if value is not None else self._run.run_env.get(name, "")

    def status(self, step: str) -> str:
        return self._run.states.get(step, "")

    def output(self, step: str, key: str) -> str:
        return self._run.step_outputs.get(step, {}).get(key, "")

    def function(self, name: str) -> bool:
        if name == "always":
            return True
        run = self._run
        if name == "cancelled":
            return run.cancelled
        if not self._step.needs:  # nothing upstream: nothing failed
            return name == "success" and not run.cancelled
        failed, not_ok = run.handlers.upstream(self._step)
        if name == "failure":
            return failed
        return not not_ok and not run.cancelled  # success()


class Handlers:
    """The conditions of one run's steps."""

    def __init__(self, run: _Run) -> None:
        self._run = run
        #: Steps that wait for all their needs to end, whatever the outcome.
        self.waiting = frozenset(s.name for s in run.flow.steps
                                 if s.condition is not None and s.condition.status_check)
        self._upstream: dict[str, tuple[bool, bool]] = {}
        #: Conditions that mean the same for every step of this run (they read only params,
        #: or params and the run's env), by text: their value, once worked out.
        self._same: dict[str, bool | None] = {}  # None: it does not

    def upstream(self, step: Step) -> tuple[bool, bool]:
        """(a step upstream failed, a step upstream did not end ok), over all ancestors.

        A failure with ``continueOnError`` counts as ok, as in GitHub Actions. Every ancestor
        has ended when a handler is evaluated, so the answer per step is kept.
        """
        known = self._upstream
        run = self._run
        # Post-order over the ancestors not yet known: a step after everything it needs.
        stack: list[tuple[str, bool]] = [(name, False) for name in step.needs]
        while stack:
            name, expanded = stack.pop()
            if name in known:
                continue
            needs = run.step(name).needs
            if expanded or all(need in known for need in needs):
                known[name] = self._fold(needs, self._own(name))
                continue
            stack.append((name, True))
            stack.extend((need, False) for need in needs if need not in known)
        return self._fold(step.needs, (False, False))

    def _own(self, name: str) -> tuple[bool, bool]:
        state = self._run.states[name]
        if state == "failed":
            continued = self._run.step(name).continue_on_error
            return not continued, not continued
        return False, state not in _OK

    def _fold(self, needs: tuple[str, ...], own: tuple[bool, bool]) -> tuple[bool, bool]:
        failed, not_ok = own
        known = self._upstream
        for need in needs:  # what is known of a step includes its own end
            f, n = known[need]
            failed, not_ok = failed or f, not_ok or n
        return failed, not_ok

    def admit(self, step: Step) -> bool:
        """Whether ``step`` runs; when not, it is recorded skipped with its condition."""
        condition = step.condition
        if condition is None or self._holds(condition, step):
            return True
        self.skip(step, f"condition false: {condition.text}")
        return False

    def _holds(self, condition: Condition, step: Step) -> bool:
        scope = StepScope(self._run, step)
        if condition.status_check or step.env:
            return evaluate(condition, scope)
        # A generated flow may give thousands of steps one condition on params: decided once.
        text = condition.text
        if text in self._same:
            known = self._same[text]
        else:
            same = reads(condition) <= {"params", "env"}
            known = self._same[text] = holds(condition, scope) if same else None
        if known is None:
            return evaluate(condition, scope)
        return known and scope.function("success")

    def skip(self, step: Step, reason: str) -> None:
        run = self._run
        run.states[step.name] = "skipped"
        run.bus.emit(StepSkipped(run_id=run.run_id, at=run.clock.now(), step=step.name,
                                 status="skipped", reason=run.mask(reason)))
        run.halt_downstream(step.name, "skipped")

    def pending(self) -> bool:
        states = self._run.states
        return any(states[name] == "pending" for name in self.waiting)

    async def drain(self, limit: float | None, reason: str, *, deadline: float | None = None,
                    on_deadline: Callable[[], str] | None = None) -> None:
        """Run the handlers left pending when the run stopped early, in file order.

        ``limit`` bounds them all (the kill grace after a cancel or the run's timeout); what
        cannot run in it, or is not a handler, is skipped with ``reason``. ``deadline`` (loop
        time: the run's ``timeout:`` after ``stopOnFail``) stops them as a run timeout does:
        ``on_deadline()`` marks the run timed out and gives the reason, the running handler is
        cancelled with it, and the ones still pending get the kill grace.
        """
        run = self._run
        me = asyncio.current_task()
        assert me is not None
        timed_out = ""
        timer: asyncio.TimerHandle | None = None
        if deadline is not None and on_deadline is not None:
            def expire() -> None:
                nonlocal timed_out
                timed_out = on_deadline()  # before the cancel: the step is cancelled with it
                me.cancel()

            timer = run.loop.call_at(deadline, expire)
        try:
            if limit is None:
                await self._drain()
            else:
                async with asyncio.timeout(limit):
                    await self._drain()
        except TimeoutError:
            pass  # the grace ran out: what did not run is skipped
        except asyncio.CancelledError:
            if timed_out and me.uncancel() == 0:
                # The run's timeout passed while handlers ran after stopOnFail: as when it
                # passes during the run, the handlers left get the kill grace.
                run.skip_pending(timed_out, keep_handlers=True)
                await self.drain(run.grace, timed_out)
            elif limit is None:
                raise  # a Ctrl-C while handlers run after stopOnFail: the run is cancelled
            # a second Ctrl-C while the handlers of a cancel run: stop them too
        finally:
            if timer is not None:
                timer.cancel()
            run.skip_pending(timed_out or reason)

    async def _drain(self) -> None:
        run = self._run
        states = run.states
        me = asyncio.current_task()
        assert me is not None
        progress = True
        while progress:
            progress = False
            for step in run.flow.steps:
                name = step.name
                if states[name] != "pending" or name not in self.waiting:
                    continue
                if any(states[need] not in _ENDED for need in step.needs):
                    continue  # a handler it needs runs first
                progress = True
                if not self.admit(step):
                    continue
                states[name] = "running"
                run.running[me] = name
                try:
                    result = await run.run_step(step)
                except asyncio.CancelledError:
                    states[name] = "cancelled"
                    raise
                finally:
                    run.running.pop(me, None)
                run.finish(step, result)
