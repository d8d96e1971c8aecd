"""The shipped JSON Schema agrees with the loader: same keys, same verdict on sample flows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from chronum.errors import SpecError
from chronum.spec import _build, schema_path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(schema_path().read_text())
    jsonschema.Draft202012Validator.check_schema(data)
    return data


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


def test_schema_ships_in_the_package():
    assert schema_path().name == "flow.schema.json" and schema_path().parent.name == "spec"


def _descriptions_missing(node: Any, path: str = "") -> list[str]:
    missing = []
    if isinstance(node, dict):
        for key, sub in node.get("properties", {}).items():
            if isinstance(sub, dict) and "description" not in sub:
                missing.append(f"{path}.{key}")
        for key, sub in node.items():
            if key not in ("allOf", "if", "then", "else"):  # conditions restate keys
                missing += _descriptions_missing(sub, f"{path}/{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            missing += _descriptions_missing(sub, f"{path}[{i}]")
    return missing


def test_every_key_has_a_description(schema):
    assert _descriptions_missing(schema) == []


def test_schema_keys_match_the_loader(schema):
    defs = schema["$defs"]
    retry_object = next(s for s in defs["step"]["properties"]["retry"]["anyOf"]
                        if s.get("type") == "object")
    assert set(schema["properties"]) == _build.FLOW_KEYS
    assert set(defs["step"]["properties"]) == _build.STEP_KEYS
    assert set(retry_object["properties"]) == _build.RETRY_KEYS
    assert set(defs["backoff"]["properties"]) == _build.BACKOFF_KEYS
    assert defs["backoff"]["properties"]["jitter"]["enum"] == [*_build.JITTERS, None]


GOOD = {
    "minimal": "name: f\nsteps: [{name: a, run: x}]\n",
    "full": """\
name: deploy-api
maxParallel: 3
stopOnFail: true
defaultRetry: 2
defaultTimeout: 600
backoff: {base: 1, factor: 2, max: 60, jitter: full}
env: {STAGE: dev, N: 3}
params: {region: eu}
steps:
  - {name: build, run: make build, shell: bash, cwd: src, env: {A: b}}
  - name: test
    run: pytest
    needs: [build]
    retry: {limit: 3, backoff: {base: 0.5, jitter: none}, exitCodes: [1, 75]}
    timeout: 120
    continueOnError: false
  - {name: pre, executor: python, run: scripts/preprocess.py}
  - {name: clean, executor: python, call: "mod.sub:clean_frame", needs: pre}
  - {name: package, executor: docker, image: "python:3.12-slim", run: python -m build}
""",
    "nulls": "name: f\nenv:\nsteps:\n  - name: a\n    run: x\n    needs:\n",
}

BAD = {
    "unknown-key": "name: f\nmaxParalel: 2\nsteps: []\n",
    "step-typo": "name: f\nsteps: [{name: a, run: x, neds: [b]}]\n",
    "no-name": "steps: []\n",
    "bad-step-name": "name: f\nsteps: [{name: 'a b', run: x}]\n",
    "max-parallel-zero": "name: f\nmaxParallel: 0\nsteps: []\n",
    "negative-retry": "name: f\nsteps: [{name: a, run: x, retry: -1}]\n",
    "zero-timeout": "name: f\nsteps: [{name: a, run: x, timeout: 0}]\n",
    "bad-jitter": "name: f\nbackoff: {jitter: half}\nsteps: []\n",
    "small-factor": "name: f\nbackoff: {factor: 0.5}\nsteps: []\n",
    "shell-without-run": "name: f\nsteps: [{name: a}]\n",
    "call-on-shell": "name: f\nsteps: [{name: a, run: x, call: f}]\n",
    "python-both": "name: f\nsteps: [{name: a, executor: python, run: s.py, call: f}]\n",
    "python-neither": "name: f\nsteps: [{name: a, executor: python}]\n",
    "env-list": "name: f\nenv: {A: [1]}\nsteps: []\n",
    "retry-key": "name: f\nsteps: [{name: a, run: x, retry: {limt: 1}}]\n",
    "docker-key-on-shell": "name: f\nsteps: [{name: a, run: x, image: alpine}]\n",
}


@pytest.mark.parametrize("text", GOOD.values(), ids=GOOD.keys())
def test_good_flows_pass_schema_and_loader(schema, parse, text):
    _validator(schema).validate(yaml.safe_load(text))
    parse(text)


@pytest.mark.parametrize("text", BAD.values(), ids=BAD.keys())
def test_bad_flows_fail_schema_and_loader(schema, parse, text):
    assert list(_validator(schema).iter_errors(yaml.safe_load(text)))
    with pytest.raises(SpecError):
        parse(text)


def _examples() -> list[Path]:
    return sorted(EXAMPLES.rglob("*.yaml")) + sorted(EXAMPLES.rglob("*.yml"))


@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.name)
def test_examples_pass_the_schema(schema, path):
    _validator(schema).validate(yaml.safe_load(path.read_text()))
