"""The docs tell the truth: every key, command, option and event is documented, every page is
reachable from the README, every relative link leads somewhere, and the code examples run."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = [README, *sorted(DOCS.glob("*.md"))]


def _text(name: str) -> str:
    return (DOCS / name).read_text()


def _python_blocks() -> list[str]:
    return [block for page in PAGES
            for block in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)]


def test_every_flow_key_is_in_the_format_page():
    schema = json.loads((ROOT / "chronum" / "spec" / "flow.schema.json").read_text())
    keys = set(schema["properties"]) | set(schema["$defs"]["step"]["properties"])
    page = _text("flow-format.md")
    missing = sorted(k for k in keys if f"`{k}`" not in page)
    assert missing == []


def test_every_cli_command_and_option_is_documented():
    from chronum.cli import _parser

    page = _text("cli.md")
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, cmd in sub.choices.items():
        if f"chronum {name}" not in page:
            missing.append(name)
        for action in cmd._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag not in ("--help",) and flag not in page:
                    missing.append(f"{name} {flag}")
    assert missing == []


def test_every_event_kind_is_documented():
    from chronum.eventbus import EVENT_KINDS

    page = _text("python-api.md")
    assert [k for k in EVENT_KINDS if f"`{k}`" not in page] == []


# --- links ----------------------------------------------------------------------------------

_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # no headings in code
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", text, flags=re.M):
        slug = _slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return [t for t in _LINK.findall(text) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading(page: Path):
    broken = []
    for target in _relative_links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / unquote(path)).resolve() if path else page
        missing_anchor = bool(anchor) and dest.suffix == ".md" and anchor not in _anchors(dest)
        if not dest.exists() or missing_anchor:
            broken.append(target)
    assert broken == []


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in _relative_links(README)}
    pages = sorted(DOCS.glob("*.md"))
    assert pages
    assert [p.name for p in pages if p.resolve() not in linked] == []


def test_the_readme_shows_install_and_the_two_commands():
    text = README.read_text()
    assert "pip install chronum" in text
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    assert extras
    for extra in extras:
        assert f"pip install 'chronum[{extra}]'" in text, extra
    assert "make demo" in text
    assert "make test" in text


# --- examples -------------------------------------------------------------------------------

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


# --- what the pages say a command prints ---------------------------------------------------

def _normalized(line: str) -> str:
    """A printed line without what changes between runs: run ids, durations, file names."""
    line = re.sub(r"\b[0-9a-f]{12}\b", "RUN", line)
    line = re.sub(r"\b\d+\.\d+s\b", "Ns", line)
    return re.sub(r"release-RUN\.txt", "release.txt", line)


@pytest.mark.parametrize("page", [README, DOCS / "cli.md"], ids=lambda p: p.name)
def test_the_example_run_prints_what_the_page_shows(page: Path, tmp_path: Path):
    """The page's `$ chronum run examples/chronum.yaml`, run as written: its first lines (the
    header and the steps that start at once, in file order) and its last line are the real
    ones, and every line it shows is printed."""
    (shown,) = [b for b in re.findall(r"```text\n(.*?)```", page.read_text(), flags=re.S)
                if b.startswith("$ chronum run examples/chronum.yaml\n")]
    lines = shown.splitlines()[1:]
    shutil.copytree(ROOT / "examples", tmp_path / "examples",
                    ignore=shutil.ignore_patterns("build", ".chronum*"))
    out = subprocess.run([sys.executable, "-m", "chronum", "run", "examples/chronum.yaml"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    printed = [_normalized(x) for x in out.stdout.splitlines()]
    expected = [_normalized(x) for x in lines]
    head = expected[:expected.index("...")]
    assert printed[:4] == head[:4]
    assert printed[-1] == expected[-1]
    assert [x for x in expected if x != "..." and x not in printed] == []
