"""validate, graph and the no-traceback rule for user mistakes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import Chronum


def test_validate_reports_every_problem_with_locations(chronum: Chronum):
    chronum.write("bad.yaml", """
        name: bad
        maxParalel: 2
        steps:
          - name: build
            run: make
          - name: test
            run: pytest
            needs: [biuld]
    """)
    proc = chronum("validate", "bad.yaml")
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("bad.yaml:2:1: ")
    assert "did you mean 'maxParallel'?" in lines[0]
    assert lines[1].startswith("bad.yaml:8:")
    assert "did you mean 'build'?" in lines[1]
    assert lines[-1] == "2 problems found"
    assert "Traceback" not in proc.stderr


def test_validate_ok(chronum: Chronum):
    chronum.write("ok.yaml", """
        name: ok
        steps:
          - name: a
            run: "true"
    """)
    proc = chronum("validate", "ok.yaml")
    assert proc.returncode == 0
    assert proc.stdout == "ok.yaml: ok — flow 'ok', 1 step\n"


def test_cycle_is_spelled_out(chronum: Chronum):
    chronum.write("cyc.yaml", """
        name: cyc
        steps:
          - {name: a, run: "true", needs: [c]}
          - {name: b, run: "true", needs: [a]}
          - {name: c, run: "true", needs: [b]}
    """)
    proc = chronum("run", "cyc.yaml")
    assert proc.returncode == 2
    assert "a -> b -> c -> a" in proc.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["run", "missing.yaml"], "missing.yaml"), (["show", "last"], "no runs recorded"),
     (["run"], "usage:"), (["history", "--limit", "0"], "at least 1")],
    ids=["missing-file", "no-db", "no-file-arg", "bad-limit"],
)
def test_user_mistakes_get_a_message_not_a_traceback(chronum: Chronum, args, needle):
    proc = chronum(*args)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


def test_graph_writes_dot_deterministically(chronum: Chronum, tmp_path: Path):
    chronum.write("g.yaml", """
        name: g
        steps:
          - {name: b, run: "true", needs: [a]}
          - {name: a, run: "true"}
          - {name: c, run: "true", needs: [b, a]}
    """)
    proc = chronum("graph", "g.yaml")
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[-4:] == [
        '  "a" -> "b";', '  "a" -> "c";', '  "b" -> "c";', "}"]
    assert chronum("graph", "g.yaml", "-o", "g.dot").returncode == 0
    assert (tmp_path / "g.dot").read_text() == proc.stdout


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_graph_renders_with_graphviz(chronum: Chronum, tmp_path: Path, fmt: str):
    assert shutil.which("dot"), "make test installs graphviz"
    chronum.write("g.yaml", """
        name: g
        steps:
          - {name: a, run: "true"}
    """)
    assert chronum("graph", "g.yaml", "-o", f"g.{fmt}").returncode == 0
    data = (tmp_path / f"g.{fmt}").read_bytes()
    assert data.startswith(b"<?xml" if fmt == "svg" else b"\x89PNG")


def test_graph_without_dot_names_the_package(chronum: Chronum, tmp_path: Path):
    chronum.write("g.yaml", """
        name: g
        steps:
          - {name: a, run: "true"}
    """)
    chronum.env["PATH"] = str(tmp_path / "empty-bin")
    proc = chronum("graph", "g.yaml", "-o", "g.svg")
    assert proc.returncode == 2
    assert "install the graphviz package" in proc.stderr
    assert "Traceback" not in proc.stderr
