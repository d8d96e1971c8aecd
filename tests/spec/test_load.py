"""Valid flows become the normalized model, with every default applied."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from chronum.errors import Location
from chronum.model import Backoff, RetryPolicy
from chronum.spec import load

DESIGN_EXAMPLE = """\
name: deploy-api
maxParallel: 3
stopOnFail: true
defaultRetry: 2
defaultTimeout: 600
backoff: {base: 1, factor: 2, max: 60, jitter: full}
env: {STAGE: dev}
params: {region: eu}
steps:
  - name: build
    run: make build
  - name: test
    run: pytest
    needs: [build]
    retry: 3
    timeout: 120
    continueOnError: false
  - name: preprocess
    executor: python
    run: scripts/preprocess.py
  - name: clean
    executor: python
    call: clean_frame
    needs: [preprocess]
  - name: package
    executor: docker
    image: python:3.12-slim
    run: python -m build
"""


def test_design_example(parse):
    flow = parse(DESIGN_EXAMPLE)
    assert flow.name == "deploy-api"
    assert (flow.max_parallel, flow.stop_on_fail, flow.default_retry) == (3, True, 2)
    assert flow.default_timeout == 600.0
    assert dict(flow.env) == {"STAGE": "dev"}
    assert dict(flow.params) == {"region": "eu"}
    assert flow.step_names == ("build", "test", "preprocess", "clean", "package")
    build, test, pre, clean, package = flow.steps
    assert build.retry.limit == 2 and build.timeout == 600.0  # flow defaults applied
    assert test.retry.limit == 3 and test.timeout == 120.0 and test.needs == ("build",)
    assert pre.executor == "python" and pre.run == "scripts/preprocess.py" and pre.call is None
    assert clean.call == "clean_frame" and clean.run is None
    assert package.executor == "docker" and dict(package.options) == {"image": "python:3.12-slim"}
    assert build.location == Location("flow.yaml", 10, 5, "steps[0]")


def test_minimal_flow_gets_model_defaults(parse):
    flow = parse("name: f\nsteps:\n  - {name: a, run: 'true'}\n")
    (step,) = flow.steps
    assert (flow.max_parallel, flow.stop_on_fail, flow.default_timeout) == (1, False, None)
    assert step.executor == "shell" and step.retry == RetryPolicy() and step.timeout is None
    assert not step.continue_on_error and step.needs == () and dict(step.env) == {}


def test_retry_backoff_is_laid_over_the_flow_backoff(parse):
    flow = parse(textwrap.dedent("""\
        name: f
        defaultRetry: 4
        backoff: {base: 2, jitter: none}
        steps:
          - name: a
            run: x
            retry: {backoff: {factor: 3}, exitCodes: [1, 75]}
          - name: b
            run: x
            retry: {limit: 1, exitCodes: 75}
        """))
    a, b = flow.steps
    assert flow.backoff == Backoff(base=2.0, factor=2.0, max=60.0, jitter="none")
    assert a.retry == RetryPolicy(limit=4, backoff=Backoff(2.0, 3.0, 60.0, "none"),
                                  exit_codes=(1, 75))
    assert b.retry == RetryPolicy(limit=1, backoff=flow.backoff, exit_codes=(75,))


@pytest.mark.parametrize(
    ("yaml_value", "expected"),
    [("dev", "dev"), ("3", "3"), ("1.5", "1.5"), ("true", "true"), ("no", "false"),
     ("'007'", "007"), ("2024-01-01", "2024-01-01"), ('""', "")],
    ids=["string", "int", "float", "bool", "yaml11-bool", "quoted", "date-as-text", "empty"],
)
def test_env_values_become_strings(parse, yaml_value, expected):
    flow = parse(f"name: f\nenv:\n  X: {yaml_value}\nsteps: []\n")
    assert dict(flow.env) == {"X": expected}


def test_keys_are_text_as_written(parse):
    flow = parse("name: f\nparams: {ON: 1, 1: one}\nsteps: []\n")
    assert dict(flow.params) == {"ON": "1", "1": "one"}


def test_needs_single_string_and_forward_reference(parse):
    flow = parse("name: f\nsteps:\n  - {name: a, run: x, needs: b}\n  - {name: b, run: x}\n")
    assert flow.steps[0].needs == ("b",)


def test_duplicate_needs_are_kept_once_in_order(parse):
    flow = parse("name: f\nsteps:\n  - {name: a, run: x}\n  - {name: b, run: x}\n"
                 "  - {name: c, run: x, needs: [b, a, b]}\n")
    assert flow.steps[2].needs == ("b", "a")


def test_null_means_not_given(parse):
    flow = parse("name: f\nmaxParallel:\nenv:\nsteps:\n  - name: a\n    run: x\n    needs:\n"
                 "    timeout: ~\n")
    assert flow.max_parallel == 1 and dict(flow.env) == {} and flow.steps[0].needs == ()


def test_integral_float_is_an_integer_and_1e3_a_number(parse):
    flow = parse("name: f\nmaxParallel: 2.0\ndefaultTimeout: 1e3\nsteps: []\n")
    assert flow.max_parallel == 2 and isinstance(flow.max_parallel, int)
    assert flow.default_timeout == 1000.0


def test_yaml_merge_keys(parse):
    flow = parse(textwrap.dedent("""\
        name: f
        steps:
          - &base {name: base, run: make, timeout: 5}
          - {<<: *base, name: a}
          - {<<: *base, name: b, timeout: 9}
        """))
    base, a, b = flow.steps
    assert (base.name, a.name, b.name) == ("base", "a", "b")
    assert (a.run, a.timeout, b.timeout) == ("make", 5.0, 9.0)


def test_shell_key_and_params_override(parse):
    flow = parse("name: f\nparams: {region: eu, n: 1}\nsteps:\n"
                 "  - {name: a, run: x, shell: bash}\n", params={"region": "us"})
    assert flow.steps[0].shell == "bash"
    assert dict(flow.params) == {"region": "us", "n": "1"}


def test_default_name_for_notebook_cells(parse):
    assert parse("steps: []\n", default_name="cell-3").name == "cell-3"
    assert parse("name: given\nsteps: []\n", default_name="cell-3").name == "given"


def test_load_file_sets_source_and_base_dir(tmp_path: Path, executors):
    sub = tmp_path / "flows"
    sub.mkdir()
    path = sub / "f.yml"
    path.write_text("name: f\nsteps: [{name: a, run: x}]\n")
    flow = load(path, executors=executors)
    assert flow.source == str(path) and flow.base_dir == sub
    assert flow.steps[0].location == Location(str(path), 2, 9, "steps[0]")


def test_json_goes_through_the_same_loader(tmp_path: Path, executors):
    path = tmp_path / "f.json"
    path.write_text('{\n\t"name": "f",\n\t"steps": [{"name": "a", "run": "x",'
                    ' "timeout": 1e2}]\n}\n')
    flow = load(path, executors=executors)
    assert flow.steps[0].timeout == 100.0
    assert flow.steps[0].location == Location(str(path), 3, 12, "steps[0]")


def test_utf8_bom_is_accepted(tmp_path: Path, executors):
    path = tmp_path / "f.yaml"
    path.write_bytes(b"\xef\xbb\xbfname: caf\xc3\xa9\nsteps: []\n")
    assert load(path, executors=executors).name == "café"


def test_loads_base_dir_and_source(parse, tmp_path: Path):
    flow = parse("name: f\nsteps: []\n", base_dir=tmp_path)
    assert flow.base_dir == tmp_path and flow.source == "flow.yaml"
    assert parse("name: f\nsteps: []\n", filename="<string>").source is None
