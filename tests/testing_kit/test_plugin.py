"""examples/plugin installs into a temporary folder and its executor runs a flow from there.

The plugin is installed with ``--target`` into a folder that the subprocesses get on
``PYTHONPATH``, never into the project's virtualenv: an install there would outlive the test and
(if editable) slow every later Python start with its import hook.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def shout_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A folder holding the installed plugin: its package and its metadata (the entry point).

    The build runs on a copy of examples/plugin so that setuptools' ``build/`` and
    ``*.egg-info`` stay out of the repository, and offline: ``--no-build-isolation`` uses this
    environment's setuptools and ``wheel`` (in the `dev` dependency group).
    """
    base = tmp_path_factory.mktemp("plugin")
    source, target = base / "src", base / "site"
    shutil.copytree(ROOT / "examples" / "plugin", source,
                    ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
           "--no-build-isolation", "--no-index", "--target", str(target), str(source)]
    out = subprocess.run(cmd, cwd=source, capture_output=True, text=True, timeout=110)
    assert out.returncode == 0, out.stderr
    entry_points = list(target.glob("chronum_shout-*/entry_points.txt"))
    assert len(entry_points) == 1, sorted(p.name for p in target.iterdir())
    assert "shout = chronum_shout:ShoutExecutor" in entry_points[0].read_text()
    return str(target)


def _env(*folders: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*folders, env.get("PYTHONPATH", "")]).strip(os.pathsep)
    return env


def test_a_flow_runs_with_the_installed_plugin(shout_path: str, tmp_path: Path):
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
                         timeout=60, env=_env(shout_path))
    assert out.returncode == 1, out.stderr
    logs = subprocess.run([sys.executable, "-m", "chronum", "logs", "last", "greet", "--db",
                           "s.db"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env=_env(shout_path))
    assert logs.stdout == "HELLO PLUGIN\n"
    assert '"exit_code": 3' in out.stdout


_REGISTRY = textwrap.dedent("""
    from chronum.executors import ExecutorRegistry
    registry = ExecutorRegistry()
    print(sorted(registry.names()))
    if "shout" in registry.names():
        print(sorted(registry.step_keys("shout")))
""")


def test_the_plugin_keeps_the_executor_contract_where_it_applies(shout_path: str):
    # A fresh interpreter: the entry point is visible there whatever this process cached.
    out = subprocess.run([sys.executable, "-c", _REGISTRY], capture_output=True, text=True,
                         timeout=60, env=_env(shout_path))
    assert out.stdout.splitlines() == [
        "['dask', 'docker', 'python', 'shell', 'shout']", "['exitCode', 'message']"], out.stderr


def test_the_plugin_is_found_only_through_its_folder(shout_path: str):
    # The install went to the temporary folder; the environment running the tests is untouched.
    out = subprocess.run([sys.executable, "-c", _REGISTRY], capture_output=True, text=True,
                         timeout=60, env=_env())
    assert out.stdout.splitlines() == ["['dask', 'docker', 'python', 'shell']"], out.stderr
