"""Golden texts: every new key and every kind of condition error, located as a user reads it."""

from __future__ import annotations

import pytest

from chronum.errors import SpecError
from chronum.spec import loads

HEAD = ("name: f\nparams: {mode: full}\nsteps:\n  - name: build\n    run: 'true'\n"
        "  - name: b\n    run: 'true'\n    needs: build\n")

CASES = [
    ("syntax-end", HEAD + "    if: params.mode ==\n",
     ["flow.yaml:9:9: steps[1].if: column 15 of the condition: expected a value after '==', "
      "got the end of the condition"]),
    ("and-and", HEAD + "    if: always() && failure()\n",
     ["flow.yaml:9:9: steps[1].if: column 10 of the condition: unexpected '&&' (use 'and')"]),
    ("unterminated", HEAD + "    if: \"params.mode == 'full\"\n",
     ["flow.yaml:9:9: steps[1].if: column 16 of the condition: unterminated string "
      "(close it with ')"]),
    ("unknown-function", HEAD + "    if: succes()\n",
     ["flow.yaml:9:9: steps[1].if: column 1 of the condition: unknown function 'succes' "
      "(the functions are always(), success(), failure() and cancelled())"]),
    ("bare-word", HEAD + "    if: full\n",
     ["flow.yaml:9:9: steps[1].if: column 1 of the condition: unknown name 'full' (use "
      "params.NAME, env.NAME, steps.NAME.status, steps.NAME.outputs.KEY, or quote a string: "
      "'text')"]),
    ("unknown-step", HEAD + "    if: steps.buidl.status == 'failed'\n",
     ["flow.yaml:9:9: steps[1].if: column 7 of the condition: unknown step 'buidl' "
      "(did you mean 'build'?)"]),
    ("not-upstream", HEAD + "  - name: c\n    run: 'true'\n    if: steps.b.outputs.n > 1\n",
     ["flow.yaml:11:9: steps[2].if: column 7 of the condition: step 'b' is not upstream of "
      "'c' (add 'b' to its needs)"]),
    ("itself", HEAD + "    if: steps.b.status == 'failed'\n",
     ["flow.yaml:9:9: steps[1].if: column 7 of the condition: a step's condition cannot read "
      "the step itself (it has not run yet when the condition is evaluated)"]),
    ("unknown-param", HEAD + "    if: params.mod == 'full'\n",
     ["flow.yaml:9:9: steps[1].if: column 8 of the condition: unknown parameter 'mod' "
      "(did you mean 'mode'?)"]),
    ("no-such-status", HEAD + "    if: steps.build.status == 'success'\n",
     ["flow.yaml:9:9: steps[1].if: a step's status is never 'success' "
      "(did you mean 'succeeded'?)"]),
    ("unknown-field", HEAD + "    if: steps.build.state == 'x'\n",
     ["flow.yaml:9:9: steps[1].if: column 13 of the condition: unknown field 'state' of a "
      "step (use steps.NAME.status or steps.NAME.outputs.KEY)"]),
    ("not-text", HEAD + "    if: [always]\n",
     ["flow.yaml:9:9: steps[1].if: expected a condition (text), got a list "
      "(e.g. if: params.mode == 'full')"]),
    ("run-timeout", "name: f\ntimeout: 0\nsteps: []\n",
     ["flow.yaml:2:10: timeout: must be greater than 0, got 0"]),
    ("run-timeout-text", "name: f\ntimeout: two hours\nsteps: []\n",
     ["flow.yaml:2:10: timeout: expected seconds or a duration, got a string 'two hours' "
      "(write a number of seconds or a duration like 90s, 10m, 2h or 1h30m)"]),
    ("on-timeout", HEAD + "    retry: {limit: 2, onTimeout: 0}\n",
     ["flow.yaml:9:34: steps[1].retry.onTimeout: expected true or false, got an integer 0"]),
    ("on-timeout-typo", HEAD + "    retry: {limit: 2, onTimout: false}\n",
     ["flow.yaml:9:23: steps[1].retry: unknown key 'onTimout' (did you mean 'onTimeout'?)"]),
    ("if-typo", HEAD + "    iff: always()\n",
     ["flow.yaml:9:5: steps[1]: unknown key 'iff' (did you mean 'if'?)"]),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_problem_text(text, expected):
    with pytest.raises(SpecError) as info:
        loads(text, filename="flow.yaml")
    assert [str(p) for p in info.value.problems] == expected


def test_good_conditions_load_and_false_is_a_condition():
    flow = loads(HEAD + "    if: \"steps.build.outputs.rows > 40 and params.mode == 'full'\"\n"
                 "  - name: c\n    run: 'true'\n    needs: b\n    if: false\n"
                 "  - name: d\n    run: 'true'\n    needs: c\n    if: failure()\n"
                 "    retry: {limit: 2, onTimeout: false}\ntimeout: 7200\n",
                 filename="flow.yaml")
    b, c, d = flow.step("b"), flow.step("c"), flow.step("d")
    assert b.condition is not None and not b.condition.status_check
    assert c.condition is not None and c.condition.text == "false"
    assert d.condition is not None and d.condition.status_check
    assert d.retry.on_timeout is False and not d.retry.should_retry(1, 124)
    assert d.retry.should_retry(1, 1) and b.retry.limit == 0
    assert flow.timeout == 7200


def test_a_condition_may_read_a_step_further_upstream():
    flow = loads(HEAD + "  - name: c\n    run: 'true'\n    needs: b\n"
                 "    if: steps.build.outputs.n == 1\n", filename="flow.yaml")
    assert flow.step("c").condition is not None
