"""The command line is built one command at a time: each command alone parses as in the whole
tree, and what needs every command (``--help``, a mistyped command) still gets them all."""

from __future__ import annotations

import argparse

import pytest

from chronum.cli import COMMANDS, _command_in, _parser

from .conftest import Chronum


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _shape(parser: argparse.ArgumentParser) -> list[tuple[object, ...]]:
    """Every argument as what the user sees of it, nested commands included."""
    shape: list[tuple[object, ...]] = []
    for action in parser._actions:
        shape.append((tuple(action.option_strings), action.dest, action.nargs, action.default,
                      tuple(action.choices or ()) if not isinstance(
                          action, argparse._SubParsersAction) else (), action.help))
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                shape.append((name, *_shape(sub)))
    return shape


def test_the_whole_tree_has_every_command_in_order():
    assert list(_subparsers(_parser())) == list(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_one_command_alone_is_the_same_as_in_the_whole_tree(command: str):
    alone = _subparsers(_parser(command))
    assert list(alone) == [command]
    assert _shape(alone[command]) == _shape(_subparsers(_parser())[command])


def test_only_a_leading_command_name_picks_one():
    assert _command_in(["run", "flow.yaml"]) == "run"
    assert _command_in(["--help"]) is None
    assert _command_in(["runn", "flow.yaml"]) is None
    assert _command_in([]) is None


def test_help_and_a_mistyped_command_list_every_command(chronum: Chronum):
    helped = chronum("--help")
    assert helped.returncode == 0
    for command in COMMANDS:
        assert command in helped.stdout
    wrong = chronum("runn", "flow.yaml")
    assert wrong.returncode == 2
    assert "invalid choice: 'runn'" in wrong.stderr
    assert all(repr(command) in wrong.stderr for command in COMMANDS)
