"""The notebooks in notebooks/ run top to bottom in a real kernel and give the saved outputs.

Each runs under strict ``--nbval`` in its own pytest subprocess: nbval needs options of its own
(the sanitize file; no ``filterwarnings = error``, which would turn the kernel client's
deprecation warnings into failures of the harness rather than of the notebook). Outputs that
always differ (run ids, timestamps, durations, ``at 0x...``) are rewritten by
notebooks/sanitize.cfg; a cell whose output is inherently variable is tagged
``nbval-ignore-output`` in the notebook itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def nbval_argv(notebook: Path) -> list[str]:
    return [
        sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env",
        "--nbval-sanitize-with", str(ROOT / "notebooks" / "sanitize.cfg"),
        "--nbval-cell-timeout=120", "-p", "no:cacheprovider", "-o", "addopts=",
        "-W", "ignore::DeprecationWarning", "-q", str(notebook),
    ]


@pytest.fixture(scope="module", autouse=True)
def _matplotlib_font_cache() -> None:
    """Build matplotlib's font cache first: on a fresh machine the first import in a notebook
    would print "building the font cache" into the cell's output and fail the comparison."""
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], check=True,
                   capture_output=True, timeout=120)


def test_there_are_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01-quickstart.ipynb", "02-dataframes.ipynb", "03-history.ipynb",
    ]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_reproduces_its_outputs(notebook: Path) -> None:
    proc = subprocess.run(nbval_argv(notebook), cwd=ROOT, capture_output=True, text=True,
                          timeout=280)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
