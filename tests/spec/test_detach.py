"""``detach: allow | stop``: validated where it is written, carried to the executors."""

from __future__ import annotations

STEP = "name: f\nsteps:\n  - name: a\n    run: x\n"


def test_detach_allow_reaches_the_step(parse):
    flow = parse(STEP + "    detach: allow\n")
    assert flow.steps[0].options.get("detach") == "allow"


def test_detach_stop_is_the_default(parse):
    assert "detach" not in parse(STEP).steps[0].options
    assert "detach" not in parse(STEP + "    detach: stop\n").steps[0].options


def test_detach_takes_allow_or_stop(problems):
    assert problems(STEP + "    detach: yes please\n") == [
        "flow.yaml:5:13: steps[0].detach: expected 'allow' or 'stop', got 'yes please' "
        "('detach: allow' lets a daemon the step starts outlive it)"]


def test_detach_is_for_steps_that_start_a_process(problems):
    text = "name: f\nsteps:\n  - name: a\n    executor: python\n    call: m:f\n    detach: allow\n"
    assert problems(text) == [
        "flow.yaml:6:13: steps[0].detach: 'detach' is for steps that start a process ('run'); "
        "a 'call' step runs in this process"]
