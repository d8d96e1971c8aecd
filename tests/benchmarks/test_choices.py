"""``benchmarks/choices.py``: the plain form it measures against is the same thing, made plainly."""

from __future__ import annotations

import dataclasses
import sys
import types
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import choices  # noqa: E402

from chronum import eventbus  # noqa: E402


def _plain_events() -> types.ModuleType:
    module = types.ModuleType("plain_events")
    sys.modules["plain_events"] = module  # dataclasses resolves annotations through it
    try:
        exec(compile(choices.dataclass_events_module(), "plain_events.py", "exec"),
             module.__dict__)
    finally:
        del sys.modules["plain_events"]
    return module


def test_the_plain_events_are_frozen_slotted_dataclasses_of_the_same_kinds_and_fields():
    plain = _plain_events()
    kinds = {cls.kind: cls for cls in vars(eventbus).values()
             if isinstance(cls, type) and issubclass(cls, eventbus.Event)
             and cls is not eventbus.Event}
    assert sorted(kinds) == sorted(eventbus.EVENT_KINDS)
    for kind, cls in kinds.items():
        twin = getattr(plain, cls.__name__)
        assert twin.kind == kind
        assert dataclasses.is_dataclass(twin) and twin.__dataclass_params__.frozen
        assert hasattr(twin, "__slots__")
        common = ["run_id", "at", "step", "attempt"]
        assert [f.name for f in dataclasses.fields(twin)] == common + list(cls.FIELDS)


def test_the_hand_written_events_keep_the_dataclass_shape():
    # keyword-only construction with defaults, read-only afterwards: what the plain form gives
    event = eventbus.StepFailed(run_id="r", step="s", attempt=2, exit_code=3, reason="boom")
    assert event.data == {"exit_code": 3, "duration_s": 0.0, "reason": "boom",
                          "continued": False, "outputs": None}
    try:
        event.reason = "other"  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("an event must be read-only")
    assert not hasattr(event, "__dict__")
