"""examples/plugin installs into the test environment and its executor runs a flow."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def shout_installed() -> None:
    """``pip install --no-deps -e examples/plugin``, once, if it is not installed yet.

    Without build isolation it would need ``wheel`` in the venv, which a fresh venv lacks.
    """
    try:
        distribution("chronum-shout")
        return
    except PackageNotFoundError:
        pass
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "-e",
         str(ROOT / "examples" / "plugin")],
        capture_output=True, text=True, timeout=110)
    assert out.returncode == 0, out.stderr


def test_a_flow_runs_with_the_installed_plugin(shout_installed: None, tmp_path: Path):
    (tmp_path / "flow.yaml").write_text(textwrap.dedent("""
        name: loud
        steps:
          - name: greet
            executor: shout
            message: hello plugin
          - name: fail
            executor: shout
            message: bye
            exitCode: 3
            needs: [greet]
    """))
    out = subprocess.run([sys.executable, "-m", "chronum", "run", "flow.yaml", "--db", "s.db",
                          "--format", "json"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1, out.stderr
    logs = subprocess.run([sys.executable, "-m", "chronum", "logs", "last", "greet", "--db",
                           "s.db"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert logs.stdout == "HELLO PLUGIN\n"
    assert '"exit_code": 3' in out.stdout


def test_the_plugin_keeps_the_executor_contract_where_it_applies(shout_installed: None):
    # A fresh interpreter: the entry point is visible there whatever this process cached.
    code = textwrap.dedent("""
        from chronum.executors import ExecutorRegistry
        registry = ExecutorRegistry()
        print(sorted(registry.names()))
        print(sorted(registry.step_keys("shout")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.splitlines() == [
        "['dask', 'docker', 'python', 'shell', 'shout']", "['exitCode', 'message']"]
