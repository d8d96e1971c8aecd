"""The parser registry: built-ins, registered formats, and what a parser may return."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chronum.errors import SpecError
from chronum.model import Flow, Step
from chronum.spec import ParserRegistry, load, loads


def _json_parser(text: str, filename: str) -> Any:
    """A third-party style parser: plain dicts and lists, no positions."""
    return json.loads(text)


def test_registered_parser_with_plain_dicts(tmp_path: Path, executors):
    registry = ParserRegistry(entry_points=False)
    registry.register("plainjson", _json_parser, extensions=("PJ",))
    path = tmp_path / "flow.pj"
    path.write_text(json.dumps({"name": "f", "steps": [{"name": "a", "run": "x"}]}))
    flow = load(path, parsers=registry, executors=executors)
    assert flow.step_names == ("a",)
    assert flow.source == str(path)


def test_plain_dict_problems_have_paths_but_no_lines(executors):
    registry = ParserRegistry(entry_points=False)
    registry.register("plainjson", _json_parser)
    with pytest.raises(SpecError) as info:
        loads('{"name": "f", "steps": [{"name": "a", "run": "x", "retry": "3"}]}',
              fmt="plainjson", filename="f.pj", parsers=registry, executors=executors)
    assert str(info.value) == "f.pj: steps[0].retry: expected an integer, got a string '3' " \
                              "(or a mapping {limit, backoff, exitCodes})"


def test_parser_returning_a_flow_is_taken_as_is(executors):
    made = Flow(name="py", steps=(Step(name="a", run="x"),), params={"n": "1"})
    registry = ParserRegistry(entry_points=False)
    registry.register("py", lambda text, filename: made)
    assert loads("", fmt="py", parsers=registry, executors=executors) is made
    flow = loads("", fmt="py", parsers=registry, executors=executors, params={"n": "2"})
    assert dict(flow.params) == {"n": "2"}


def test_parser_crash_becomes_a_spec_error(executors):
    def broken(text: str, filename: str) -> Any:
        raise ValueError("bad input at 3")

    registry = ParserRegistry(entry_points=False)
    registry.register("broken", broken)
    with pytest.raises(SpecError) as info:
        loads("x", fmt="broken", filename="f.b", parsers=registry, executors=executors)
    assert str(info.value) == "f.b: the broken parser failed: bad input at 3"


def test_unknown_extension_names_the_known_ones(tmp_path: Path, executors):
    path = tmp_path / "flow.toml"
    path.write_text("name = 'f'\n")
    with pytest.raises(SpecError) as info:
        load(path, parsers=ParserRegistry(entry_points=False), executors=executors)
    assert str(info.value) == (f"{path}: no parser for '.toml' files "
                               "(known extensions: .json, .yaml, .yml)")
    # Python flow files come through Chronum's own entry point, as a plugin's format would.
    with pytest.raises(SpecError) as info:
        load(path, parsers=ParserRegistry(), executors=executors)
    assert str(info.value) == (f"{path}: no parser for '.toml' files "
                               "(known extensions: .json, .py, .yaml, .yml)")


def test_unknown_format(executors):
    with pytest.raises(SpecError) as info:
        loads("x", fmt="toml", parsers=ParserRegistry(entry_points=False), executors=executors)
    assert str(info.value) == ("<string>: unknown flow format 'toml' "
                               "(installed formats: json, yaml)")
    with pytest.raises(SpecError) as info:
        loads("x", fmt="toml", parsers=ParserRegistry(), executors=executors)
    assert str(info.value) == ("<string>: unknown flow format 'toml' "
                               "(installed formats: json, python, yaml)")


def test_registry_without_builtins():
    registry = ParserRegistry(builtins=False, entry_points=False)
    assert registry.formats() == [] and registry.format_for("f.yaml") is None


def test_entry_points_are_read_only_for_unknown_extensions(monkeypatch):
    calls: list[str] = []

    def fake_entry_points(group: str) -> list[Any]:
        calls.append(group)
        return []

    monkeypatch.setattr("importlib.metadata.entry_points", fake_entry_points)
    registry = ParserRegistry()
    assert registry.format_for("flow.YAML") == "yaml" and calls == []
    assert registry.format_for("flow.toml") is None and calls == ["chronum.parsers"]
