"""What a user expects of a command: help for every argument, and shell completion that costs
a normal start nothing."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chronum.cli import _parser

from .conftest import Chronum

COMMANDS = ["run", "validate", "graph", "history", "show", "logs", "resume", "cancel",
            "cache", "serve", "export", "completion"]


def _walk(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        yield path, action
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}")


def test_every_argument_of_every_command_has_help():
    actions = list(_walk(_parser(), "chronum"))
    commands = {path for path, _ in actions}
    assert commands == {"chronum", *(f"chronum {c}" for c in COMMANDS),
                        "chronum cache list", "chronum cache clear"}
    missing = [f"{path}: {'/'.join(a.option_strings) or a.dest}" for path, a in actions
               if not a.help or a.help == argparse.SUPPRESS]
    assert missing == []


def test_run_help_documents_the_colour_rules(chronum: Chronum):
    proc = chronum("run", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "--color {auto,always,never}" in text
    assert "not if NO_COLOR is set, else yes if FORCE_COLOR is, else only on a terminal" in text
    assert "FILE the flow file (YAML)" in text


def _imports(*args: str) -> set[str]:
    """Top-level modules a real `python -X importtime -m chronum ARGS` imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "chronum", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return {line.rsplit("|", 1)[1].strip().split(".")[0]
            for line in proc.stderr.splitlines() if line.startswith("import time:")}


def test_completion_is_imported_only_by_its_command():
    assert "shtab" not in _imports("--version")
    assert "shtab" not in _imports("run", "--help")
    assert "shtab" in _imports("completion", "bash")  # the check above can see it
    script = ("import sys, chronum.cli; chronum.cli._parser(); "
              "print('shtab' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert out == "False\n"


@pytest.mark.parametrize("shell", ["bash", "zsh", "tcsh"])
def test_completion_prints_a_script_naming_every_command(chronum: Chronum, shell: str):
    proc = chronum("completion", shell)
    assert proc.returncode == 0, proc.stderr
    assert "chronum" in proc.stdout
    for command in COMMANDS:
        assert command in proc.stdout


def _complete(script: Path, *words: str) -> list[str]:
    """What bash offers after ``words`` with the script loaded (the last word is the one typed)."""
    line = " ".join(words)
    program = (f"source {script}\n"
               f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
               f"COMP_CWORD={len(words) - 1}; COMP_LINE={line!r}; COMP_POINT={len(line)}\n"
               "_shtab_chronum\n"
               'printf "%s\\n" "${COMPREPLY[@]}"\n')
    proc = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30,
                          cwd=script.parent)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_bash_script_parses_and_completes(chronum: Chronum, tmp_path: Path):
    script = tmp_path / "chronum.bash"
    script.write_text(chronum("completion", "bash").stdout)
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert _complete(script, "chronum", "") == COMMANDS
    assert _complete(script, "chronum", "hi") == ["history"]
    assert _complete(script, "chronum", "run", "--color", "") == ["auto", "always", "never"]
    (tmp_path / "etl.yaml").write_text("name: etl\n")
    assert _complete(script, "chronum", "validate", "et") == ["etl.yaml"]


def test_an_unknown_shell_is_a_usage_error(chronum: Chronum):
    proc = chronum("completion", "cmd.exe")
    assert proc.returncode == 2
    assert "invalid choice: 'cmd.exe'" in proc.stderr
