"""Every problem, as the user reads it: ``file:line:col: path: message (hint)``."""

from __future__ import annotations

import textwrap

import pytest

from chronum.errors import SpecError

STEP = "name: f\nsteps:\n  - name: a\n    run: x\n"

# (id, flow text, the exact problems printed)
CASES = [
    ("unknown-flow-key", "name: f\nmaxParalel: 3\nsteps: []\n",
     ["flow.yaml:2:1: unknown key 'maxParalel' (did you mean 'maxParallel'?)"]),
    ("unknown-step-key", "name: f\nsteps:\n  - name: a\n    run: x\n    neds: [a]\n",
     ["flow.yaml:5:5: steps[0]: unknown key 'neds' (did you mean 'needs'?)"]),
    ("snake-case-key", STEP + "    continue_on_error: true\n",
     ["flow.yaml:5:5: steps[0]: unknown key 'continue_on_error' "
      "(did you mean 'continueOnError'?)"]),
    ("unknown-key-no-hint", STEP + "    zzz: 1\n",
     ["flow.yaml:5:5: steps[0]: unknown key 'zzz'"]),
    ("int-got-string", "name: f\nmaxParallel: three\nsteps: []\n",
     ["flow.yaml:2:14: maxParallel: expected an integer, got a string 'three'"]),
    ("retry-got-string", STEP + "    retry: three\n",
     ["flow.yaml:5:12: steps[0].retry: expected an integer, got a string 'three' "
      "(or a mapping {limit, backoff, exitCodes})"]),
    ("int-got-bool", "name: f\ndefaultRetry: true\nsteps: []\n",
     ["flow.yaml:2:15: defaultRetry: expected an integer, got a boolean true"]),
    ("max-parallel-range", "name: f\nmaxParallel: 0\nsteps: []\n",
     ["flow.yaml:2:14: maxParallel: must be at least 1, got 0"]),
    ("retry-range", STEP + "    retry: -1\n",
     ["flow.yaml:5:12: steps[0].retry: must be at least 0, got -1"]),
    ("timeout-range", STEP + "    timeout: 0\n",
     ["flow.yaml:5:14: steps[0].timeout: must be greater than 0, got 0"]),
    ("timeout-infinite", STEP + "    timeout: .inf\n",
     ["flow.yaml:5:14: steps[0].timeout: expected a finite number, got inf"]),
    ("backoff-ranges", "name: f\nbackoff: {base: -1, factor: 0.5, max: -2, jitter: ful}\n"
     "steps: []\n",
     ["flow.yaml:2:17: backoff.base: must be at least 0, got -1",
      "flow.yaml:2:29: backoff.factor: must be at least 1, got 0.5",
      "flow.yaml:2:39: backoff.max: must be at least 0, got -2",
      "flow.yaml:2:51: backoff.jitter: expected one of 'full', 'equal', 'none', "
      "got a string 'ful' (did you mean 'full'?)"]),
    ("step-backoff-key", STEP + "    retry: {limit: 1, backoff: {bse: 1}}\n",
     ["flow.yaml:5:33: steps[0].retry.backoff: unknown key 'bse' (did you mean 'base'?)"]),
    ("bool-got-string", STEP + "    continueOnError: 'yes'\n",
     ["flow.yaml:5:22: steps[0].continueOnError: expected true or false, got a string 'yes'"]),
    ("flow-name-missing", "steps: []\n",
     ["flow.yaml:1:1: missing required key 'name'"]),
    ("flow-name-empty", "name: ''\nsteps: []\n",
     ["flow.yaml:1:7: name: the flow name is empty"]),
    ("unknown-executor-rules-skipped",
     "name: f\nsteps:\n  - {name: a, executor: ssh, shell: zsh}\n",
     ["flow.yaml:3:25: steps[0].executor: unknown executor 'ssh' "
      "(installed executors: docker, python, shell)"]),
    ("steps-missing", "name: f\n",
     ["flow.yaml:1:1: missing required key 'steps'"]),
    ("steps-not-list", "name: f\nsteps: {a: 1}\n",
     ["flow.yaml:2:8: steps: expected a list of steps, got a mapping"]),
    ("step-not-mapping", "name: f\nsteps:\n  - echo hi\n",
     ["flow.yaml:3:5: steps[0]: expected a mapping (a step), got a string 'echo hi'"]),
    ("step-name-missing", "name: f\nsteps:\n  - run: x\n",
     ["flow.yaml:3:5: steps[0]: missing required key 'name'"]),
    ("step-name-invalid", "name: f\nsteps:\n  - name: my step\n    run: x\n",
     ["flow.yaml:3:11: steps[0].name: invalid step name 'my step' "
      "(use letters, digits, '_', '.' and '-')"]),
    ("step-name-number", "name: f\nsteps:\n  - name: 1\n    run: x\n",
     ['flow.yaml:3:11: steps[0].name: expected a string, got an integer 1 (quote it: "1")']),
    ("duplicate-step", "name: f\nsteps:\n  - name: a\n    run: x\n  - name: a\n    run: y\n",
     ["flow.yaml:5:11: steps[1].name: duplicate step name 'a' (the first is on line 3)"]),
    ("unknown-needs", "name: f\nsteps:\n  - {name: test, run: x}\n"
     "  - {name: deploy, run: x, needs: [build, tset]}\n",
     ["flow.yaml:4:36: steps[1].needs[0]: unknown step 'build'",
      "flow.yaml:4:43: steps[1].needs[1]: unknown step 'tset' (did you mean 'test'?)"]),
    ("unknown-needs-string", "name: f\nsteps:\n  - {name: test, run: x, needs: tets}\n",
     ["flow.yaml:3:33: steps[0].needs: unknown step 'tets' (did you mean 'test'?)"]),
    ("needs-itself", "name: f\nsteps:\n  - {name: a, run: x, needs: [a]}\n",
     ["flow.yaml:3:31: steps[0].needs[0]: step 'a' needs itself"]),
    ("needs-not-names", "name: f\nsteps:\n  - {name: a, run: x, needs: [1]}\n",
     ["flow.yaml:3:31: steps[0].needs[0]: expected a step name, got an integer 1"]),
    ("cycle", textwrap.dedent("""\
        name: f
        steps:
          - {name: z, run: x}
          - {name: a, run: x, needs: [c]}
          - {name: b, run: x, needs: [a]}
          - {name: c, run: x, needs: [b, z]}
        """),
     ["flow.yaml:4:5: steps[1]: cycle: a -> b -> c -> a (remove one need on this loop, "
      "e.g. 'c' from the needs of 'a')"]),
    ("unknown-executor", STEP + "    executor: dockr\n",
     ["flow.yaml:5:15: steps[0].executor: unknown executor 'dockr' "
      "(did you mean 'docker'? installed executors: docker, python, shell)"]),
    ("executor-key-elsewhere", STEP + "    image: alpine\n",
     ["flow.yaml:5:5: steps[0]: unknown key 'image' "
      "('image' is for the docker executor: add 'executor: docker')"]),
    ("shell-needs-run", "name: f\nsteps:\n  - name: a\n",
     ["flow.yaml:3:5: steps[0]: a shell step needs 'run'"]),
    ("python-needs-run-or-call", "name: f\nsteps:\n  - {name: a, executor: python}\n",
     ["flow.yaml:3:5: steps[0]: a python step needs 'run' (a script) or 'call' (a function)"]),
    ("python-not-both", "name: f\nsteps:\n  - {name: a, executor: python, run: s.py, call: f}\n",
     ["flow.yaml:3:5: steps[0]: a python step takes 'run' (a script) or 'call' "
      "(a function), not both"]),
    ("call-on-shell", "name: f\nsteps:\n  - {name: a, call: mod:fn}\n",
     ["flow.yaml:3:21: steps[0].call: 'call' is only for python executors (python, dask) "
      "(add 'executor: python')"]),
    ("call-malformed", "name: f\nsteps:\n  - {name: a, executor: python, call: 'mod fn'}\n",
     ["flow.yaml:3:39: steps[0].call: expected 'module:function' or a function name, "
      "got 'mod fn'"]),
    ("shell-key-on-python", "name: f\nsteps:\n  - {name: a, executor: python, run: s.py, "
     "shell: bash}\n",
     ["flow.yaml:3:51: steps[0].shell: 'shell' is only for the shell executor, not 'python'"]),
    ("env-null-value", "name: f\nenv: {A: }\nsteps: []\n",
     ["flow.yaml:2:10: env.A: expected a string, number or boolean, got null "
      "(use \"\" for an empty value)"]),
    ("env-list-value", "name: f\nenv: {A: [1]}\nsteps: []\n",
     ["flow.yaml:2:10: env.A: expected a string, number or boolean, got a list"]),
    ("env-bad-name", "name: f\nenv: {'A=B': 1}\nsteps: []\n",
     ["flow.yaml:2:7: env: invalid name a string 'A=B' (names are non-empty strings "
      "without '=')"]),
    ("env-nul", "name: f\nenv: {A: \"x\\0y\"}\nsteps: []\n",
     ["flow.yaml:2:10: env.A: a NUL character is not allowed here"]),
    ("top-level-list", "- a\n- b\n",
     ["flow.yaml:1:1: expected a mapping at the top level, got a list"]),
    ("empty-file", "# nothing\n",
     ["flow.yaml:1:1: the flow is empty (a flow needs at least 'name' and 'steps')"]),
    ("exit-codes", STEP + "    retry: {exitCodes: [1, x]}\n",
     ["flow.yaml:5:28: steps[0].retry.exitCodes[1]: expected an integer, got a string 'x'"]),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_problem_text(problems, text, expected):
    assert problems(text) == expected


def test_all_problems_in_one_pass(problems):
    text = textwrap.dedent("""\
        name: f
        maxParalel: 2
        steps:
          - name: build
            run: make
            retry: three
          - name: test
            neds: [build]
            run: pytest
          - name: deploy
            run: ./deploy
            needs: [tset]
            executor: dockr
          - name: build
            run: again
        """)
    assert problems(text) == [
        "flow.yaml:2:1: unknown key 'maxParalel' (did you mean 'maxParallel'?)",
        "flow.yaml:6:12: steps[0].retry: expected an integer, got a string 'three' "
        "(or a mapping {limit, backoff, exitCodes})",
        "flow.yaml:8:5: steps[1]: unknown key 'neds' (did you mean 'needs'?)",
        "flow.yaml:12:13: steps[2].needs[0]: unknown step 'tset' (did you mean 'test'?)",
        "flow.yaml:13:15: steps[2].executor: unknown executor 'dockr' "
        "(did you mean 'docker'? installed executors: docker, python, shell)",
        "flow.yaml:14:11: steps[3].name: duplicate step name 'build' (the first is on line 4)",
    ]


def test_spec_error_message_is_the_problems(parse):
    with pytest.raises(SpecError) as info:
        parse("name: f\nmaxParallel: 0\nsteps: [{name: a}]\n")
    assert str(info.value) == (
        "flow.yaml:2:14: maxParallel: must be at least 1, got 0\n"
        "flow.yaml:3:9: steps[0]: a shell step needs 'run'"
    )
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("params", "expected"),
    [({"regon": "us"}, "flow.yaml:2:9: params: unknown parameter 'regon' "
                       "(did you mean 'region'?)"),
     ({"zone": "a"}, "flow.yaml:2:9: params: unknown parameter 'zone' "
                     "(declared parameters: region)")],
    ids=["did-you-mean", "declared-list"],
)
def test_undeclared_param_override(problems, params, expected):
    assert problems("name: f\nparams: {region: eu}\nsteps: []\n", params=params) == [expected]


def test_param_override_without_declared_params(problems):
    assert problems("name: f\nsteps: []\n", params={"x": "1"}) == [
        "flow.yaml:1:1: params: unknown parameter 'x' (the flow declares no parameters)"]


def test_executor_that_cannot_be_imported(problems, executors):
    executors._targets["broken"] = "no_such_module_for_chronum:Executor"
    out = problems(STEP.replace("run: x", "run: x\n    executor: broken") + "  - name: b\n"
                   "    run: x\n    executor: broken\n")
    assert len(out) == 1  # reported once, not once per step
    assert out[0].startswith("flow.yaml:5:15: steps[0].executor: executor 'broken' "
                             "(no_such_module_for_chronum:Executor) could not be loaded:")


def test_broken_executor_is_reported_even_after_a_key_hint(problems, executors):
    # The hint for 'image' looks at every executor, the broken one too; the step that uses
    # the broken executor must still be told.
    executors._targets["broken"] = "no_such_module_for_chronum:Executor"
    out = problems("name: f\nsteps:\n  - {name: a, run: x, image: y}\n"
                   "  - {name: b, run: x, executor: broken}\n")
    assert out[0] == ("flow.yaml:3:23: steps[0]: unknown key 'image' "
                      "('image' is for the docker executor: add 'executor: docker')")
    assert out[1].startswith("flow.yaml:4:33: steps[1].executor: executor 'broken'")
    assert len(out) == 2
