"""Real kernels for notebook tests: nbclient runs cells built in memory with nbformat.

The kernel is this interpreter (a kernelspec written to a temporary JUPYTER_PATH), so it sees
the chronum being tested; each notebook runs in its own ``tmp_path`` with its own store.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

KERNEL = "chronum-test"


@pytest.fixture(scope="session")
def kernel_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "chronum test", "language": "python",
    }))
    return root


@pytest.fixture
def notebook(kernel_path: Path, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``notebook(cells, allow_errors=False)`` -> the executed NotebookNode."""
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_path))
    monkeypatch.delenv("CHRONUM_DB", raising=False)

    def run(cells: Sequence[str], *, allow_errors: bool = False) -> Any:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=120,
                                         allow_errors=allow_errors,
                                         resources={"metadata": {"path": str(tmp_path)}})
        client.execute()
        return nb

    return run


@pytest.fixture
def client_for(kernel_path: Path, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """A NotebookClient to drive cell by cell (interrupts), with ``allow_errors``."""
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_path))
    monkeypatch.delenv("CHRONUM_DB", raising=False)

    def make(cells: Sequence[str]) -> Any:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        return nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=120, allow_errors=True,
                                       resources={"metadata": {"path": str(tmp_path)}})

    return make


def text_of(cell: Any) -> str:
    """Everything a cell showed as text: streams, text/plain, error names."""
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
        else:
            parts.append(out.data.get("text/plain", ""))
    return "".join(parts)


def html_of(cell: Any) -> str:
    return "".join(out.data.get("text/html", "") for out in cell.outputs
                   if out.output_type in ("display_data", "execute_result"))


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)
