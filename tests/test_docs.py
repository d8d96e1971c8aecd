"""The README tells the truth: every key, command, option and event is documented, and its
code examples run."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_every_flow_key_is_in_the_format_table():
    schema = json.loads((ROOT / "chronum" / "spec" / "flow.schema.json").read_text())
    keys = set(schema["properties"]) | set(schema["$defs"]["step"]["properties"])
    missing = sorted(k for k in keys if f"`{k}`" not in README)
    assert missing == []


def test_every_cli_command_and_option_is_documented():
    from chronum.cli import _parser

    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, cmd in sub.choices.items():
        if f"chronum {name}" not in README:
            missing.append(name)
        for action in cmd._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag not in ("--help",) and flag not in README:
                    missing.append(f"{name} {flag}")
    assert missing == []


def test_every_event_kind_is_documented():
    from chronum.eventbus import EVENT_KINDS

    assert [k for k in EVENT_KINDS if f"`{k}`" not in README] == []


def test_the_plugin_example_runs(tmp_path: Path):
    (block,) = [b for b in _python_blocks() if "register_executor" in b]
    (tmp_path / "flow.yaml").write_text(textwrap.dedent("""
        name: plugin
        steps:
          - name: hello
            executor: echo
            word: bonjour
    """))
    script = block + textwrap.dedent("""
        run = chronum.run("flow.yaml", db="state.db")
        print(run.status)
        print(chronum.steps(db="state.db")["status"].tolist())
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["succeeded", "['succeeded']"]
    log = next((tmp_path / "logs").rglob("hello.log")).read_text()
    assert log == "bonjour\n"


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_example_validates(path: Path):
    out = subprocess.run([sys.executable, "-m", "chronum", "validate", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
