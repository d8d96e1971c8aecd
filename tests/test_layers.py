"""The import-linter contract covers the whole package: a new module cannot escape its layers."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layers() -> list[set[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return [{name.strip() for name in re.split(r"[|:]", layer)} for layer in contract["layers"]]


def test_every_module_of_chronum_has_a_layer():
    named = set().union(*_layers())
    package = ROOT / "chronum"
    modules = {f"chronum.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    modules |= {f"chronum.{p.parent.name}" for p in package.glob("*/__init__.py")}
    assert modules - named == set(), "add these modules to [tool.importlinter] in pyproject.toml"
    assert named - modules == set(), "these layers name modules that do not exist"


def test_the_front_ends_sit_above_the_api_and_the_pure_core_at_the_bottom():
    layers = _layers()
    position = {name: i for i, layer in enumerate(layers) for name in layer}
    assert position["chronum.cli"] < position["chronum.api"] < position["chronum.session"]
    assert position["chronum.session"] < position["chronum.engine"] < position["chronum.state"]
    assert position["chronum.state"] < position["chronum.eventbus"] < position["chronum.model"]
    assert layers[-1] >= {"chronum.errors"}


def test_the_architecture_page_names_every_module_of_the_tree():
    page = (ROOT / "docs" / "architecture.md").read_text()
    package = ROOT / "chronum"
    names = {p.name for p in package.glob("*.py") if p.stem != "__init__"}
    names |= {f"{p.parent.name}/" for p in package.glob("*/__init__.py")}
    for sub in ("engine", "render"):
        names |= {p.name for p in (package / sub).glob("*.py") if p.stem != "__init__"}
    missing = sorted(name for name in names if name not in page)
    assert missing == [], "docs/architecture.md does not mention these modules"
