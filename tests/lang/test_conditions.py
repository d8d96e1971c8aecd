"""The ``if:`` language on its own: what parses, what it means, where an error points."""

from __future__ import annotations

import pytest

from chronum.conditions import evaluate, parse
from chronum.errors import ConditionError


class Scope:
    def __init__(self, *, params=None, env=None, states=None, outputs=None,
                 failed=False, not_ok=False, cancelled=False):
        self.params, self.env_ = params or {}, env or {}
        self.states, self.outputs = states or {}, outputs or {}
        self.failed, self.not_ok, self.cancelled = failed, not_ok, cancelled

    def param(self, name):
        return self.params.get(name, "")

    def env(self, name):
        return self.env_.get(name, "")

    def status(self, step):
        return self.states.get(step, "")

    def output(self, step, key):
        return self.outputs.get(step, {}).get(key, "")

    def function(self, name):
        return {"always": True, "failure": self.failed, "cancelled": self.cancelled,
                "success": not self.not_ok and not self.cancelled}[name]


@pytest.mark.parametrize(("text", "scope", "expected"), [
    ("params.mode == 'full'", Scope(params={"mode": "full"}), True),
    ("params.mode == 'full'", Scope(params={"mode": "quick"}), False),
    ("params.mode != \"full\"", Scope(params={"mode": "quick"}), True),
    # numeric strings compare as numbers, as in GitHub Actions
    ("steps.produce.outputs.rows > 40", Scope(outputs={"produce": {"rows": "42"}}), True),
    ("steps.produce.outputs.rows > 40", Scope(outputs={"produce": {"rows": "9"}}), False),
    ("steps.p.outputs.n == 3", Scope(outputs={"p": {"n": "3.0"}}), True),
    ("steps.p.outputs.n <= steps.p.outputs.m", Scope(outputs={"p": {"n": "9", "m": "10"}}),
     True),
    # two strings that are not numbers compare as strings
    ("'b' > 'a'", Scope(), True),
    ("steps.p.outputs.missing == ''", Scope(), True),
    ("env.HOME == '/root' or env.X == 'y'", Scope(env={"X": "y"}), True),
    ("params.r in ['eu', 'us']", Scope(params={"r": "us"}), True),
    ("params.r not in ['eu', 'us']", Scope(params={"r": "ap"}), True),
    ("'err' in steps.a.outputs.log", Scope(outputs={"a": {"log": "an error here"}}), True),
    ("not (params.a == '1' and params.b == '2')", Scope(params={"a": "1", "b": "2"}), False),
    ("params.a == '1' or params.b == '2' and params.c == '3'", Scope(params={"a": "1"}), True),
    ("true", Scope(), True),
    ("null", Scope(), False),
    # a condition without a status check is success() and (condition)
    ("params.mode == 'full'", Scope(params={"mode": "full"}, not_ok=True), False),
    ("failure()", Scope(failed=True, not_ok=True), True),
    ("failure()", Scope(), False),
    ("always()", Scope(cancelled=True, not_ok=True), True),
    ("cancelled()", Scope(cancelled=True), True),
    ("success()", Scope(cancelled=True), False),
    ("steps.a.status == 'failed'", Scope(states={"a": "failed"}, not_ok=True), True),
    ("failure() and steps.a.outputs.code == 2", Scope(failed=True,
                                                       outputs={"a": {"code": "2"}}), True),
])
def test_meaning(text, scope, expected):
    assert evaluate(parse(text), scope) is expected


def test_status_check_and_references_are_known_after_parsing():
    cond = parse("steps.build.outputs.n > 1 and params.mode == 'x'")
    assert not cond.status_check
    assert cond.refs == (("steps", "build", 7), ("params", "mode", 38))
    assert parse("steps.build.status == 'failed'").status_check
    assert parse("always()").status_check


@pytest.mark.parametrize(("text", "column", "message"), [
    ("", 1, "the condition is empty (write one, e.g. always())"),
    ("params.mode ==", 15, "expected a value after '==', got the end of the condition"),
    ("a && b", 3, "unexpected '&&' (use 'and')"),
    ("a", 1, "unknown name 'a' (use params.NAME, env.NAME, steps.NAME.status, "
     "steps.NAME.outputs.KEY, or quote a string: 'text')"),
    ("always() && failure()", 10, "unexpected '&&' (use 'and')"),
    ("always() || failure()", 10, "unexpected '||' (use 'or')"),
    ("!failure()", 1, "unexpected '!' (use 'not')"),
    ("params.a = 'x'", 10, "unexpected '=' (use '==')"),
    ("params.a == 'x", 13, "unterminated string (close it with ')"),
    ("(always()", 10, "expected ')' to close the '(' at column 1, got the end of the condition"),
    ("always(1)", 8, "expected ')' after 'always(': the status functions take no arguments, "
     "got '1'"),
    ("succes()", 1, "unknown function 'succes' (the functions are always(), success(), "
     "failure() and cancelled())"),
    ("steps.a.state == 'x'", 9, "unknown field 'state' of a step (use steps.NAME.status or "
     "steps.NAME.outputs.KEY)"),
    ("steps.a", 8, "expected '.' after 'steps.a', got the end of the condition"),
    ("params.", 8, "expected a name after 'params.', got the end of the condition"),
    ("always() failure()", 10, "unexpected 'failure' (join conditions with 'and' or 'or')"),
    ("params.a == 'x' and", 20, "expected a value, got the end of the condition"),
    ("x" * 5000, 1, "the condition is 5000 characters long, over the limit of 4096"),
])
def test_syntax_errors_name_the_column(text, column, message):
    with pytest.raises(ConditionError) as info:
        parse(text)
    got = info.value.message + (f" ({info.value.hint})" if info.value.hint else "")
    assert (info.value.column, got) == (column, message)
