"""The YAML layer: syntax errors with positions, and hostile input refused cheaply."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chronum.errors import SpecError
from chronum.spec import MAX_BYTES, load, loads


@pytest.mark.parametrize(
    ("text", "expected"),
    [("name: f\nsteps: [a\n", "flow.yaml:3:1: did not find expected ',' or ']'"),
     ("name: f\n  x: 1\n", "flow.yaml:2:3: bad indentation: expected 0 spaces, found 2"),
     ("name: f\nsteps: []\n---\nname: g\n",
      "flow.yaml:3:1: but found another document"),
     ("name: *nope\n", "flow.yaml:1:7: found undefined alias"),
     ("name: \"\\q\"\n", "flow.yaml:1:8: found unknown escape character")],
    ids=["unclosed-list", "bad-indent", "two-documents", "undefined-alias", "bad-escape"],
)
def test_syntax_errors_have_positions(problems, text, expected):
    (problem,) = problems(text)
    assert problem.startswith(expected)


def test_syntax_error_hint_names_the_context(problems):
    (problem,) = problems("name: f\nsteps: [a\n")
    assert problem == ("flow.yaml:3:1: did not find expected ',' or ']' "
                       "(while parsing a flow sequence on line 2)")


def test_python_tags_are_refused_without_running_anything(tmp_path: Path, problems):
    marker = tmp_path / "ran"
    text = (f"name: !!python/object/apply:os.system ['touch {marker}']\n"
            "steps: !!python/name:os.getcwd ''\n")
    assert problems(text) == [
        "flow.yaml:1:7: unsupported tag '!!python/object/apply:os.system' (only plain YAML "
        "is accepted: strings, numbers, booleans, null, lists and mappings)",
        "flow.yaml:2:8: unsupported tag '!!python/name:os.getcwd' (only plain YAML "
        "is accepted: strings, numbers, booleans, null, lists and mappings)",
    ]
    assert not marker.exists()


@pytest.mark.parametrize(
    "text",
    ["name: !custom f\nsteps: []\n", "name: f\nsteps: !!set {a, b}\n",
     "name: f\nsteps: !!binary aGk=\n", "name: f\nsteps: !!omap [a: 1]\n"],
    ids=["local-tag", "set", "binary", "omap"],
)
def test_non_plain_tags_are_refused(problems, text):
    (problem,) = problems(text)
    assert "unsupported tag" in problem


def test_standard_tags_are_fine(parse):
    flow = parse("name: !!str 12\nmaxParallel: !!int '2'\nsteps: !!seq []\n")
    assert (flow.name, flow.max_parallel) == ("12", 2)


def test_bad_explicit_scalar(problems):
    assert problems("name: f\nmaxParallel: !!int two\nsteps: []\n") == [
        "flow.yaml:2:14: cannot read 'two' as an integer"]


def _alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "name: f\nsteps: []\nenv:\n" + "\n".join("  " + line for line in lines) + "\n"


def test_alias_bomb_is_refused_not_expanded(problems):
    # 9**10 values once expanded; refused after work proportional to the text.
    out = problems(_alias_bomb())
    assert len(out) == 1
    assert out[0].endswith(": the document expands to more than 1,000,000 values "
                           "(is this an alias bomb?)")
    assert out[0].startswith("flow.yaml:")


def test_shared_aliases_below_the_limit_are_fine(parse):
    text = "name: f\nsteps:\n  - &s {name: a, run: x, env: &e {A: 1}}\n" \
           "  - {name: b, run: y, env: *e}\n"
    assert dict(parse(text).steps[1].env) == {"A": "1"}


def test_nesting_depth_is_bounded(problems):
    (problem,) = problems("name: f\nsteps: []\nenv: " + "[" * 150 + "]" * 150 + "\n")
    assert problem.startswith("flow.yaml:3:") and problem.endswith("nested deeper than 100 levels")


def test_duplicate_keys_are_errors(problems):
    text = "name: f\nsteps:\n  - name: a\n    run: x\n    run: y\nname: g\n"
    assert problems(text) == [
        "flow.yaml:5:5: duplicate key 'run' (the first is on line 4)",
        "flow.yaml:6:1: duplicate key 'name' (the first is on line 1)",
    ]


def test_merge_does_not_count_as_duplicate(parse):
    flow = parse("name: f\nsteps:\n  - &a {name: a, run: x}\n  - {<<: *a, name: b}\n")
    assert flow.step_names == ("a", "b")


def test_file_over_10_mb_is_refused_before_reading(tmp_path: Path, executors):
    path = tmp_path / "big.yaml"
    with path.open("wb") as fh:
        fh.truncate(MAX_BYTES + 1)  # sparse: refusing must not depend on reading it
    with pytest.raises(SpecError) as info:
        load(path, executors=executors)
    assert str(info.value) == (f"{path}: the flow file is 10.0 MB; flows are limited to 10 MB "
                               "(split it into smaller flows)")


def test_text_over_10_mb_is_refused(executors):
    with pytest.raises(SpecError, match="flows are limited to 10 MB"):
        loads("#" * (MAX_BYTES + 1), executors=executors)


def test_binary_file(tmp_path: Path, executors):
    path = tmp_path / "flow.yaml"
    path.write_bytes(b"name: f\nsteps: []\n# \x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(SpecError) as info:
        load(path, executors=executors)
    assert str(info.value) == (f"{path}:3:3: the file is not UTF-8 text: byte 0x89 cannot be "
                               "decoded (save it as UTF-8)")


def test_nul_in_utf8_text(problems):
    (problem,) = problems("name: f\x00\nsteps: []\n")
    assert problem.startswith("flow.yaml:1:8: ")


def test_lone_surrogate(problems):
    (problem,) = problems("name: f\nsteps: []\n# \udc80\n")
    assert problem == "flow.yaml:3:3: the text contains a character that is not valid Unicode"


def test_missing_file(tmp_path: Path, executors):
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        load(path, executors=executors)
    assert str(info.value) == f"{path}: cannot read the flow file: No such file or directory"


def test_importing_spec_stays_light():
    code = ("import sys, chronum.spec; "
            "print(sorted(m for m in ('yaml', 'difflib', 'chronum.executors') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
