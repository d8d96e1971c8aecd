"""Fan-out steps as they run: one instance per item, the DAG growing at run time.

A step with ``foreach:`` or ``matrix:`` is not run itself. When it becomes ready (everything it
needs is done, so the value of its ``{from: STEP}`` exists) it *expands*: its items are worked
out, a ``step.expanded`` event names its instances (``step[0]``, ... or
``step[region=eu,size=s]``), and each instance joins the scheduler's ready queue as a step of
its own: it retries, times out, fails and is recorded on its own, with the fan-out step's
settings. When the last instance ends, the fan-out step ends: succeeded when every instance
did, else failed; its value, handed to the steps that need it, is the list of the instances'
values in item order, ``None`` where an instance failed.

The scheduler (``runner._Run``) keeps one ready heap of integers: a step's position in the
flow, or, for an instance, ``len(flow.steps)`` plus the instance's number in this run, so
instances queue behind the flow's own ready steps and a plain flow pays nothing. ``concurrency:``
holds instances back here, not in the heap: one taken off the heap while its step already runs
that many is parked, and put back when one of them ends.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..eventbus import (
    StepCached,
    StepCancelled,
    StepExpanded,
    StepFailed,
    StepSkipped,
    StepSucceeded,
)
from ..executors import Result
from ..model import Step
from ..spec._fanout import instance_names, matrix_items

if TYPE_CHECKING:
    from .runner import _Run

__all__ = ["FanOuts", "item_json", "items_from_value", "items_of_param"]


class FanoutError(Exception):
    """The items of a fan-out step cannot be worked out; the message is the step's reason."""


# One encoder built once: ``json.dumps`` with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
#: The fields of a Step, in constructor order (an instance is its step with a few replaced).
_FIELDS = tuple(f.name for f in dataclasses.fields(Step))
_NAME, _ENV = _FIELDS.index("name"), _FIELDS.index("env")


def item_json(item: Any) -> str:
    """An item as the record keeps it (the ``item`` column): JSON, text for what JSON has no
    form for."""
    return _ENCODER.encode(item)


def items_of_param(name: str, text: str) -> list[Any]:
    """``foreach: {param: NAME}``: a JSON list (``["eu", "us"]``) or a comma list (``eu,us``)."""
    text = text.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise FanoutError(f"foreach: param {name!r} starts with '[' but is not a JSON "
                              f"list ({exc})") from None
        if not isinstance(value, list):  # pragma: no cover - '[' always parses to a list
            raise FanoutError(f"foreach: param {name!r} is not a list")
        return value
    return [part.strip() for part in text.split(",") if part.strip()]


def items_from_value(source: str, value: Any) -> list[Any]:
    """``foreach: {from: STEP}``: the list the step returned. Also taken: a string holding a
    JSON list, and a mapping of one entry holding either (a step's outputs, when it wrote a
    single one)."""
    if isinstance(value, Mapping) and len(value) == 1:
        value = next(iter(value.values()))
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return parsed
        raise FanoutError(f"foreach: the value of {source!r} is a string, not a JSON list: "
                          f"{value[:60]!r}")
    if isinstance(value, list | tuple):
        return list(value)
    what = "nothing (None)" if value is None else f"a {type(value).__name__}"
    raise FanoutError(f"foreach: the value of {source!r} is {what}; it must be a list "
                      "(a python step returns one)")


def _env_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return item_json(value)


def _env_key(key: str) -> str:
    return "CHRONUM_MATRIX_" + key.upper()


class _Fan:
    """One expanded fan-out step."""

    __slots__ = ("deferred", "failed", "fields", "items", "left", "limit", "names", "running",
                 "started", "step", "texts", "values")

    def __init__(self, step: Step, names: list[str], items: list[Any], started: float) -> None:
        self.step = step
        self.started = started
        #: The step's fields, ``foreach``/``matrix`` dropped: each instance's, but for its name
        #: and env (``dataclasses.replace`` would look the fields up again for every instance).
        self.fields: list[Any] = [None if name in ("foreach", "matrix") else getattr(step, name)
                       for name in _FIELDS]
        self.texts: tuple[str, ...] = ()
        self.names = names
        self.items = items
        self.values: list[Any] = [None] * len(items)
        self.left = len(items)
        self.failed: list[str] = []
        self.running = 0
        self.limit = step.concurrency or 0
        self.deferred: deque[int] = deque()


class FanOuts:
    """The fan-out steps of one run; the scheduler calls in at the few points it must."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.base = len(run.flow.steps)
        #: Instance number (heap key minus ``base``) -> (its fan, its index in the fan).
        self._slots: list[tuple[_Fan, int]] = []
        #: Instance name -> (its fan, its index).
        self.of: dict[str, tuple[_Fan, int]] = {}
        self._fans: dict[str, _Fan] = {}

    # -- expanding ----------------------------------------------------------------------

    def items(self, step: Step) -> list[Any]:
        assert step.foreach is not None or step.matrix is not None
        if step.matrix is not None:
            return matrix_items(step.matrix)
        assert step.foreach is not None
        kind, what = step.foreach
        if kind == "items":
            return list(what)
        if kind == "param":
            return items_of_param(what, self.run.params.get(what, ""))
        return items_from_value(what, self.run.outputs.get(what))

    def expand(self, step: Step) -> None:
        """``step`` became ready: its instances join the run (or it ends at once)."""
        run = self.run
        name = step.name
        run.states[name] = "running"
        try:
            items = self.items(step)
        except FanoutError as exc:
            self._end(step, Result(1, error=str(exc)), [])
            return
        names = instance_names(name, step.matrix, len(items))
        fan = self._fans[name] = _Fan(step, names, items, run.clock.monotonic())
        texts = fan.texts = tuple(item_json(item) for item in items)
        # What is recorded (events, the item column) is masked as logs are; the instance
        # itself gets the item as it is.
        recorded = tuple(run.mask(text) for text in texts) if run.mask else texts
        now = run.clock.now()
        run.bus.emit(StepExpanded(run_id=run.run_id, at=now, step=name,
                                  instances=tuple(names), items=recorded))
        kept = run.plan.instances.get(name, {})
        states, slots, of, ready = run.states, self._slots, self.of, run.ready
        key = self.base + len(slots)
        for i, inst in enumerate(names):
            of[inst] = (fan, i)
            slots.append((fan, i))
            old = kept.get(i)
            if old is not None and old[1] == recorded[i]:  # the same item, done before
                states[inst] = "cached"
                fan.values[i] = old[2]
                fan.left -= 1
                run.bus.emit(StepCached(run_id=run.run_id, at=now, step=inst, from_run=old[0]))
            else:
                states[inst] = "pending"
                ready.append(key + i)  # larger than every key in the heap: still a heap
        if fan.left == 0:
            self._finish_fan(fan)

    def instance(self, key: int) -> Step | None:
        """The instance behind heap key ``key``, now taken to run; None when its step's
        ``concurrency`` is reached (it is parked until an instance of that step ends)."""
        fan, i = self._slots[key - self.base]
        if self.run.states[fan.names[i]] != "pending":
            return None
        if fan.limit and fan.running >= fan.limit:
            fan.deferred.append(key)
            return None
        fan.running += 1
        parent = fan.step
        item = fan.items[i]
        env = dict(parent.env)
        if parent.matrix is not None:
            for k, v in item.items():
                env[_env_key(k)] = _env_text(v)
        env["CHRONUM_ITEM"] = item if isinstance(item, str) else fan.texts[i]
        fields = fan.fields.copy()
        fields[_NAME], fields[_ENV] = fan.names[i], env
        return Step(*fields)

    def inputs(self, name: str) -> dict[str, Any]:
        """What a python ``call:`` instance gets by parameter name: ``item``, and for a matrix
        each key."""
        fan, i = self.of[name]
        item = fan.items[i]
        if fan.step.matrix is not None:
            return {"item": item, **item}
        return {"item": item}

    # -- ending -------------------------------------------------------------------------

    def finish(self, step: Step, result: Result) -> bool:
        """An attempt loop ended; True when ``step`` was an instance (then it is handled)."""
        found = self.of.get(step.name)
        if found is None:
            return False
        fan, i = found
        run = self.run
        fan.running -= 1
        if fan.deferred:
            heapq.heappush(run.ready, fan.deferred.popleft())
        if result.ok:
            run.states[step.name] = "succeeded"
            fan.values[i] = result.value
        else:
            run.states[step.name] = "failed"
            run.errors[step.name] = run.mask(result.error or f"exit code {result.exit_code}")
            fan.failed.append(step.name)
        fan.left -= 1
        if run.states[fan.step.name] != "running":
            return True  # the fan-out step already ended (stopOnFail): nothing more to say
        if fan.left == 0:
            self._finish_fan(fan)
        elif not result.ok and run.stop_on_fail and not fan.step.continue_on_error \
                and not run.halted:
            self._finish_fan(fan)  # stop at the first failure, as for any step
        return True

    def _finish_fan(self, fan: _Fan) -> None:
        if fan.failed:
            n = len(fan.names)
            shown = ", ".join(fan.failed[:3]) + (", ..." if len(fan.failed) > 3 else "")
            result = Result(1, value=fan.values,
                            error=f"{len(fan.failed)} of {n} instances failed: {shown}")
        else:
            result = Result(0, value=fan.values)
        self._end(fan.step, result, fan.values, self.run.clock.monotonic() - fan.started)

    def _end(self, step: Step, result: Result, values: list[Any], took: float = 0.0) -> None:
        """The fan-out step ends: its value kept, its end emitted, dependents told."""
        run = self.run
        now = run.clock.now()
        run.outputs[step.name] = values
        if run.on_output is not None:  # kept failed too: a resume keeps what succeeded
            kept = run.keep(step, result)
            if not kept.ok and result.ok:
                result = kept
        reason = run.mask(result.error or "")
        if result.ok:
            run.bus.emit(StepSucceeded(run_id=run.run_id, at=now, step=step.name,
                                       exit_code=0, duration_s=took))
        else:
            run.bus.emit(StepFailed(run_id=run.run_id, at=now, step=step.name, exit_code=1,
                                    duration_s=took, reason=reason,
                                    continued=step.continue_on_error))
        run.finish(step, Result(result.exit_code, value=values, error=result.error))

    def skip_pending(self, reason: str) -> None:
        """The run stops: instances not started are skipped, a fan-out step still going is
        cancelled."""
        run = self.run
        now = run.clock.now()
        for name, fan in self._fans.items():
            for inst in fan.names:
                if run.states[inst] == "pending":
                    run.states[inst] = "skipped"
                    run.bus.emit(StepSkipped(run_id=run.run_id, at=now, step=inst,
                                             status="skipped", reason=reason))
            if run.states[name] == "running":
                run.states[name] = "cancelled"
                run.bus.emit(StepCancelled(run_id=run.run_id, at=now, step=name,
                                           reason=reason))
