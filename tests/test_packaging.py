"""What a user gets from the package: honest metadata, a licence, an sdist without the project's
own tests and tools, and a Binder environment that is pinned."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]

# Names that are tools for developing Chronum, never something a user's extra should pull in.
DEVELOPER_TOOLS = {
    "pytest", "pytest-timeout", "hypothesis", "jsonschema", "ruff", "mypy", "types-pyyaml",
    "pandas-stubs", "nbval", "playwright", "nbclient", "nbformat", "jupyterlab", "matplotlib",
    "wheel", "build", "import-linter",
}


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def _repository() -> tuple[str, str]:
    """(owner, name) of pyproject's Repository URL."""
    url = urlparse(PROJECT["urls"]["Repository"])
    assert url.netloc == "github.com", url
    owner, name = url.path.strip("/").removesuffix(".git").split("/")
    return owner, name


# --- metadata -------------------------------------------------------------------------------

def test_the_license_file_is_the_mit_licence_pyproject_declares():
    assert PROJECT["license"] == "MIT"
    assert PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Copyright (c) The Chronum authors" in text
    assert "Permission is hereby granted, free of charge" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text


def test_classifiers_match_the_python_versions_and_carry_no_licence():
    classifiers = PROJECT["classifiers"]
    minimum = PROJECT["requires-python"].removeprefix(">=")
    versions = sorted((c.rsplit(":: ", 1)[1] for c in classifiers
                       if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)),
                      key=lambda v: int(v.split(".")[1]))
    assert versions[0] == minimum
    assert versions == ["3.11", "3.12", "3.13"]
    for wanted in ("Framework :: Jupyter", "Operating System :: POSIX", "Typing :: Typed"):
        assert wanted in classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert any(c.startswith("Topic :: ") for c in classifiers)
    # With an SPDX `license` expression (PEP 639) a licence classifier is an error.
    assert not [c for c in classifiers if c.startswith("License :: ")]


def test_project_urls_point_at_the_repository():
    owner, name = _repository()
    urls = PROJECT["urls"]
    assert {"Homepage", "Repository", "Documentation", "Issues"} <= set(urls)
    for url in urls.values():
        assert url.startswith(f"https://github.com/{owner}/{name}"), url


def test_user_extras_hold_no_developer_tools():
    extras = PROJECT["optional-dependencies"]
    assert "test" not in extras
    for extra, requirements in extras.items():
        assert _names(requirements) & DEVELOPER_TOOLS == set(), extra
    # ... and the developers' group holds them all.
    assert _names(PYPROJECT["dependency-groups"]["dev"]) >= DEVELOPER_TOOLS


def test_the_dev_group_and_every_extra_are_installed_here():
    """`make setup` installs `.[notebook,dask]` and the `dev` group: every requirement of them
    is present in this environment, at a version its specifier allows."""
    wanted = [*PYPROJECT["dependency-groups"]["dev"],
              *(r for rs in PROJECT["optional-dependencies"].values() for r in rs)]
    problems = []
    for text in wanted:
        req = Requirement(text)
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{req.name} is not installed")
            continue
        if not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name} {version} does not satisfy {req.specifier}")
    assert problems == []


# --- the sdist ------------------------------------------------------------------------------

_NOT_SOURCE = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__",
                                     ".*_cache", ".hypothesis", ".chronum", ".chronum-nb")


def test_the_sdist_carries_the_package_and_no_tests(tmp_path: Path):
    """Built offline from a copy of the source tree (so nothing is written into the checkout),
    with this environment's setuptools, as `python -m build --sdist --no-isolation`."""
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    assert (source / "tests" / "test_packaging.py").exists()  # the tree does have tests
    out = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation",
                          "--outdir", str(tmp_path / "dist"), str(source)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    (sdist,) = (tmp_path / "dist").glob("chronum-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
        top = names[0].split("/")[0]
        info = tar.extractfile(f"{top}/PKG-INFO")
        assert info is not None
        pkg_info = info.read().decode()
    inside = {name.removeprefix(top + "/") for name in names}
    for wanted in ("LICENSE", "README.md", "pyproject.toml", "chronum/__init__.py",
                   "chronum/py.typed", "chronum/spec/flow.schema.json"):
        assert wanted in inside
    for folder in ("tests", "benchmarks", "reliability", "notebooks", "examples", "scripts",
                   "binder", "docs"):
        assert not [n for n in inside if n == folder or n.startswith(folder + "/")], folder
    assert not [n for n in inside if "__pycache__" in n or n.endswith(".pyc")]
    assert "License-Expression: MIT" in pkg_info
    assert "License-File: LICENSE" in pkg_info
    assert f"Project-URL: Repository, {PROJECT['urls']['Repository']}" in pkg_info


# --- Binder ---------------------------------------------------------------------------------

def test_the_binder_links_name_the_repository():
    owner, name = _repository()
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    links = [(page.name, m) for page in pages
             for m in re.finditer(r"https://mybinder\.org/v2/gh/([^/\s)]+)/([^/\s)]+)/([^?\s)]+)"
                                  r"(?:\?labpath=([^\s)&]+))?", page.read_text())]
    assert any(page == "README.md" for page, _ in links)
    for page, m in links:
        assert (m[1], m[2]) == (owner, name), f"{page}: {m[0]}"
        if m[4]:
            assert (ROOT / m[4].replace("%2F", "/")).is_file(), f"{page}: {m[0]}"


def test_binder_requirements_are_pinned():
    text = (ROOT / "binder" / "requirements.txt").read_text()
    lines = [line.strip() for line in text.splitlines()]
    requirements = [line for line in lines if line and not line.startswith("#")]
    assert ".[notebook]" in requirements  # Chronum itself, from the repository Binder builds
    pinned = [r for r in requirements if r != ".[notebook]"]
    assert pinned
    for text in pinned:
        req = Requirement(text)
        (spec,) = req.specifier
        assert spec.operator == "==", text
    # The notebook extra's packages are among them, so Binder's kernel is the tested one.
    assert _names(PROJECT["optional-dependencies"]["notebook"]) <= _names(pinned)
