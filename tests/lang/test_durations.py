"""``timeout:``, ``defaultTimeout:`` and a step's ``timeout:`` read durations ("90s", "10m",
"1h30m") as ``cacheFor`` does, in YAML and in the SDK; the reasons say them back the same way."""

from __future__ import annotations

import json
import sys

import jsonschema
import pytest
import yaml

import chronum
from chronum._args import format_duration, parse_duration
from chronum.errors import SpecError
from chronum.render.html import is_timeout, reason_label
from chronum.spec import loads, schema_path

from .conftest import Chronum


def test_every_timeout_key_reads_a_duration() -> None:
    flow = loads("name: f\ntimeout: 2h\ndefaultTimeout: 10m\nsteps:\n"
                 "  - {name: a, run: x}\n"
                 "  - {name: b, run: x, timeout: 1h30m}\n"
                 "  - {name: c, run: x, timeout: 90s}\n"
                 "  - {name: d, run: x, timeout: 0.5}\n"
                 "  - {name: e, run: x, timeout: '45'}\n", filename="flow.yaml")
    assert flow.timeout == 7200 and flow.default_timeout == 600
    assert [s.timeout for s in flow.steps] == [600, 5400, 90, 0.5, 45]


BAD = [
    ("ten minutes", "expected seconds or a duration, got a string 'ten minutes' (write a "
                    "number of seconds or a duration like 90s, 10m, 2h or 1h30m)"),
    ("0s", "must be greater than 0, got 0s"),
    ("31d", "must be at most 30d, got 31d"),
    ("true", "expected seconds or a duration, got a boolean true (write a number of seconds "
             "or a duration like 90s, 10m, 2h or 1h30m)"),
    ("0", "must be greater than 0, got 0"),
]


@pytest.mark.parametrize(("value", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_duration_is_located_at_its_key(value: str, message: str) -> None:
    text = (f"name: f\ndefaultTimeout: {value}\ntimeout: {value}\nsteps:\n"
            f"  - name: a\n    run: x\n    timeout: {value}\n")
    with pytest.raises(SpecError) as info:
        loads(text, filename="flow.yaml")
    assert [str(p) for p in info.value.problems] == [
        f"flow.yaml:2:17: defaultTimeout: {message}",
        f"flow.yaml:3:10: timeout: {message}",
        f"flow.yaml:7:14: steps[0].timeout: {message}",
    ]


def test_the_schema_takes_what_the_loader_takes() -> None:
    schema = json.loads(schema_path().read_text())
    validator = jsonschema.Draft202012Validator(schema)
    good = "name: f\ntimeout: 2h\ndefaultTimeout: 10m\nsteps: [{name: a, run: x, timeout: 1h30m}]\n"
    validator.validate(yaml.safe_load(good))
    loads(good, filename="flow.yaml")
    bad = "name: f\nsteps: [{name: a, run: x, timeout: ten minutes}]\n"
    assert list(validator.iter_errors(yaml.safe_load(bad)))
    with pytest.raises(SpecError):
        loads(bad, filename="flow.yaml")


@pytest.mark.parametrize(("seconds", "text"), [
    (0.05, "0.05s"), (90, "90s"), (600, "10m"), (5400, "90m"), (7200, "2h"), (86400, "1d"),
    (3 * 86400, "3d"), (1_000_001, "1000001s"), (61.5, "61.5s"),
])
def test_durations_are_written_as_a_person_writes_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds  # and read back as the same value


def test_pictures_say_the_unit() -> None:
    assert reason_label("timed out after 10m") == "timed out after 10 min"
    assert reason_label("timed out after 0.3s") == "timed out after 0.3 s"
    assert reason_label("timed out after 2h") == "timed out after 2 h"
    assert is_timeout("timed out after 10m") and is_timeout("timed out after 1d")
    assert not is_timeout("run timed out after 2h")  # the run's, not the step's own


def test_the_sdk_takes_durations_and_reports_bad_ones_at_the_call() -> None:
    flow = chronum.Flow("d", timeout="2h", default_timeout="10m")
    flow.shell("a", "true", timeout="1h30m")
    flow.script("b", "x.py", timeout="90s")

    @flow.step(timeout="0.5s")
    def c() -> None: ...

    model = flow.build()
    assert model.timeout == 7200 and model.default_timeout == 600
    assert [s.timeout for s in model.steps] == [5400, 90, 0.5]

    bad = chronum.Flow("bad")
    line = sys._getframe().f_lineno + 1
    bad.shell("a", "true", timeout="ten minutes")
    with pytest.raises(SpecError) as info:
        bad.build()
    (problem,) = info.value.problems
    assert problem.location.line == line and problem.location.path == "a.timeout"
    assert "expected seconds or a duration, got a string 'ten minutes'" in problem.message


def test_a_step_timeout_in_minutes_reads_back_in_minutes(chronum: Chronum) -> None:
    """A real run: a step's timeout written "0.01m" (0.6 s) stops it and says so."""
    chronum.write("f.yaml", """
        name: durations
        defaultTimeout: 0.01m
        steps:
          - name: slow
            run: sleep 30
    """)
    proc = chronum("run", "f.yaml")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    obj = chronum.json("show", "last")
    (step,) = obj["steps"]
    assert step["status"] == "failed" and step["reason"] == "timed out after 0.6s"


def test_a_run_timeout_written_as_a_duration_bounds_the_run(chronum: Chronum) -> None:
    chronum.write("f.yaml", """
        name: bounded
        timeout: 0.5s
        steps:
          - name: long
            run: sleep 30
    """)
    proc = chronum("run", "f.yaml")
    assert proc.returncode == 1 and "run timed out after 0.5s" in proc.stdout, proc.stdout
