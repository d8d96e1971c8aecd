"""``foreach:``, ``matrix:`` and ``concurrency:``: located errors (golden texts), the model, and
the JSON Schema agreeing with the loader."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

from chronum.errors import SpecError
from chronum.spec import loads, schema_path

S = "name: f\nparams: {regions: eu}\nsteps:\n  - name: a\n    run: x\n"
VALUE_HINT = ("(a value names its instance (step[key=value]): leave out '/', '\\', '[', ']', "
              "',', '=' and line breaks)")

CASES = [
    ("foreach-string", S + "    foreach: eu\n",
     ["flow.yaml:6:14: steps[0].foreach: expected a list, {param: NAME} or {from: STEP}, got "
      "a string 'eu' (for one item write [eu])"]),
    ("foreach-both-sources", S + "    foreach: {param: regions, from: a}\n",
     ["flow.yaml:6:14: steps[0].foreach: expected exactly one of 'param' or 'from' "
      "({param: NAME} takes a param's list, {from: STEP} a step's value)"]),
    ("foreach-empty-mapping", S + "    foreach: {}\n",
     ["flow.yaml:6:14: steps[0].foreach: expected exactly one of 'param' or 'from' "
      "({param: NAME} takes a param's list, {from: STEP} a step's value)"]),
    ("foreach-unknown-key", S + "    foreach: {parm: regions}\n",
     ["flow.yaml:6:15: steps[0].foreach: unknown key 'parm' (did you mean 'param'?)"]),
    ("foreach-param-number", S + "    foreach: {param: 3}\n",
     ['flow.yaml:6:22: steps[0].foreach.param: expected a string, got an integer 3 '
      '(quote it: "3")']),
    ("foreach-param-empty", S + "    foreach: {param: ''}\n",
     ["flow.yaml:6:22: steps[0].foreach.param: the param name is empty"]),
    ("foreach-unknown-param", S + "    foreach: {param: region}\n",
     ["flow.yaml:6:22: steps[0].foreach.param: unknown parameter 'region' "
      "(did you mean 'regions'?)"]),
    ("foreach-unknown-from", S + "  - {name: b, run: x, foreach: {from: aa}}\n",
     ["flow.yaml:6:39: steps[1].foreach.from: unknown step 'aa' (did you mean 'a'?)"]),
    ("foreach-from-itself", S + "    foreach: {from: a}\n",
     ["flow.yaml:6:21: steps[0].foreach.from: step 'a' needs itself"]),
    ("foreach-from-cycle", "name: f\nsteps:\n  - {name: a, run: x, foreach: {from: b}}\n"
     "  - {name: b, run: x, needs: [a]}\n",
     ["flow.yaml:3:5: steps[0]: cycle: a -> b -> a (remove one need on this loop, e.g. "
      "'b' from the needs of 'a')"]),
    ("foreach-and-matrix", S + "    foreach: [1]\n    matrix: {k: [1]}\n",
     ["flow.yaml:7:13: steps[0].matrix: a step takes 'foreach' or 'matrix', not both "
      "(a matrix is already a list of items: move the list into it)"]),
    ("matrix-not-mapping", S + "    matrix: [1, 2]\n",
     ["flow.yaml:6:13: steps[0].matrix: expected a mapping of keys to lists of values, "
      "got a list"]),
    ("matrix-empty", S + "    matrix: {}\n",
     ["flow.yaml:6:13: steps[0].matrix: the matrix is empty (give at least one key with a "
      "list of values, e.g. {region: [eu, us]})"]),
    ("matrix-bad-key", S + "    matrix: {1x: [a]}\n",
     ["flow.yaml:6:14: steps[0].matrix: invalid matrix key '1x' (matrix keys become "
      "CHRONUM_MATRIX_<KEY> and parameter names: use letters, digits and '_', not starting "
      "with a digit)"]),
    ("matrix-reserved-key", S + "    matrix: {item: [a]}\n",
     ["flow.yaml:6:14: steps[0].matrix: the matrix key 'item' is reserved ('item', 'ctx' and "
      "'context' are parameters every call gets already)"]),
    ("matrix-no-values", S + "    matrix: {k: []}\n",
     ["flow.yaml:6:17: steps[0].matrix.k: a matrix key needs at least one value"]),
    ("matrix-nested-value", S + "    matrix: {k: [[1]]}\n",
     ["flow.yaml:6:18: steps[0].matrix.k[0]: expected a string, number or boolean, "
      "got a list"]),
    ("matrix-bad-values", S + "    matrix: {k: [a/b, 'x,y']}\n",
     [f"flow.yaml:6:18: steps[0].matrix.k[0]: invalid matrix value 'a/b' {VALUE_HINT}",
      f"flow.yaml:6:23: steps[0].matrix.k[1]: invalid matrix value 'x,y' {VALUE_HINT}"]),
    ("matrix-mapping-value", S + "    matrix: {k: {a: 1}}\n",
     ["flow.yaml:6:17: steps[0].matrix.k: expected a list of values, got a mapping"]),
    ("matrix-long-names", S + "    matrix: {k: [" + "x" * 199 + "]}\n",
     ["flow.yaml:6:13: steps[0].matrix: instance names would be up to 204 characters long, "
      "over the limit of 200 (use shorter keys or values)"]),
    ("concurrency-without-fanout", S + "    concurrency: 2\n",
     ["flow.yaml:6:18: steps[0].concurrency: 'concurrency' caps the instances of a fan-out "
      "step (add 'foreach' or 'matrix', or remove it)"]),
    ("concurrency-zero", S + "    foreach: [1]\n    concurrency: 0\n",
     ["flow.yaml:7:18: steps[0].concurrency: must be at least 1, got 0"]),
    ("concurrency-string", S + "    foreach: [1]\n    concurrency: two\n",
     ["flow.yaml:7:18: steps[0].concurrency: expected an integer, got a string 'two'"]),
    ("concurrency-typo", S + "    foreach: [1]\n    concurency: 2\n",
     ["flow.yaml:7:5: steps[0]: unknown key 'concurency' (did you mean 'concurrency'?)"]),
]


def _problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        loads(text, filename="flow.yaml")
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_problem_text(text: str, expected: list[str]) -> None:
    assert _problems(text) == expected


def test_the_model_of_each_source():
    flow = loads("""
name: f
params: {regions: "eu,us"}
steps:
  - {name: src, executor: python, call: "m:f"}
  - {name: a, run: x, foreach: [eu, {k: 1}, 3]}
  - {name: b, run: x, foreach: {param: regions}}
  - {name: c, run: x, foreach: {from: src}, needs: [a]}
  - {name: d, run: x, matrix: {region: [eu, us], size: s}, concurrency: 3}
""", filename="flow.yaml")
    a, b, c, d = (flow.step(n) for n in "abcd")
    assert a.foreach == ("items", ("eu", {"k": 1}, 3))
    assert type(a.foreach[1][1]) is dict  # plain data, not the parser's positioned mapping
    assert b.foreach == ("param", "regions")
    assert c.foreach == ("from", "src") and c.needs == ("a", "src")  # the source is a need
    assert d.matrix == (("region", ("eu", "us")), ("size", ("s",))) and d.concurrency == 3
    assert not flow.step("src").fans_out and all(s.fans_out for s in (a, b, c, d))


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(schema_path().read_text())
    return data


GOOD = [
    "name: f\nsteps: [{name: a, run: x, foreach: [1, two, {k: v}], concurrency: 2}]\n",
    "name: f\nparams: {p: '1,2'}\nsteps: [{name: a, run: x, foreach: {param: p}}]\n",
    "name: f\nsteps: [{name: s, run: x}, {name: a, run: x, foreach: {from: s}}]\n",
    "name: f\nsteps: [{name: a, run: x, matrix: {region: [eu, us], n: [1, 2], on: true}}]\n",
]
BAD = [c[1] for c in CASES if c[0] not in (
    # what only the loader can tell: names of params and steps, cycles, name lengths
    "foreach-unknown-param", "foreach-unknown-from", "foreach-from-itself",
    "foreach-from-cycle", "matrix-long-names", "concurrency-without-fanout",
    "foreach-param-empty")]


@pytest.mark.parametrize("text", GOOD)
def test_good_fanouts_pass_schema_and_loader(schema: dict[str, Any], text: str) -> None:
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(text))
    loads(text, filename="flow.yaml")


@pytest.mark.parametrize("text", BAD)
def test_bad_fanouts_fail_schema_and_loader(schema: dict[str, Any], text: str) -> None:
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(yaml.safe_load(text)))
    with pytest.raises(SpecError):
        loads(text, filename="flow.yaml")
