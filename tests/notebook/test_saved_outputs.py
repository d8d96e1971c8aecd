"""What an executed notebook file holds for Chronum runs: pictures, never widget views.

Executed by ``jupyter nbconvert --execute`` (nbclient underneath), as a user or CI does: a
blocking ``%%chronum`` cell whose live view appears, a ``--background`` run waited for in a
later cell, and ``flow.run()`` in a cell. Every run leaves its final picture in its first
output and empty outputs where its live parts were; no widget view, no widget state, no
Cancel control.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbconvert")

from .conftest import KERNEL  # noqa: E402

WIDGET = "application/vnd.jupyter.widget-view+json"
CANCEL = "application/vnd.chronum.cancel+json"

CELLS = [
    "%load_ext chronum",
    "%%chronum blocking\nsteps:\n  - name: a\n    run: sleep 0.6 && echo a\n"
    "  - name: b\n    run: echo b\n    needs: [a]\n",
    "%%chronum bg --background\nsteps:\n  - name: nap\n    run: sleep 0.6 && echo nap\n",
    "r = await _.wait()\nprint(r.status)",
    "import chronum\nflow = chronum.Flow('sdk')\nflow.shell('s', 'sleep 0.6 && echo s')\n"
    "print(flow.run().status)",
]


def test_an_executed_notebook_holds_pictures_and_no_widget(kernel_path: Path,
                                                           tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "chronum test",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    path = tmp_path / "runs.ipynb"
    nbformat.write(nb, path)
    env = {**os.environ, "JUPYTER_PATH": str(kernel_path)}
    env.pop("CHRONUM_DB", None)
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--inplace", "--ExecutePreprocessor.timeout=120", str(path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    saved = json.loads(path.read_text())
    assert "widgets" not in saved["metadata"]
    kinds = {k for c in saved["cells"] for o in c.get("outputs", []) for k in o.get("data", {})}
    assert WIDGET not in kinds and CANCEL not in kinds, kinds

    def pictures(cell: dict) -> list[str]:
        return ["".join(o["data"]["text/html"]) for o in cell["outputs"]
                if "text/html" in o.get("data", {})]

    blocking, background, _wait, sdk = saved["cells"][1:]
    for cell, flow in ((blocking, "blocking"), (background, "bg"), (sdk, "sdk")):
        (picture,) = pictures(cell)  # the final picture, once
        assert "chronum-static" in picture and "chronum-live" not in picture, flow
        assert '<span class="chronum-state">succeeded</span>' in picture, flow
        first = cell["outputs"][0] if cell is not sdk else \
            next(o for o in cell["outputs"] if o["output_type"] == "display_data")
        assert "".join(first["data"]["text/html"]) == picture  # where the live view began
    assert "".join(_wait["outputs"][0]["text"]) == "succeeded\n"
    assert "succeeded" in "".join("".join(o.get("text", "")) for o in sdk["outputs"])


def test_chronum_run_without_load_ext_shows_the_live_view(notebook: Any, tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text(
        "name: plain\nsteps:\n  - name: a\n    run: sleep 0.8 && echo a\n")
    nb = notebook(["import chronum\nr = chronum.run('f.yaml')\nprint(r.status)"])
    outputs = nb.cells[0].outputs
    shown = [o for o in outputs if o.output_type == "display_data"]
    # The live view appeared (six outputs) and settled to the final picture.
    assert len(shown) == 6, outputs
    assert "chronum-static" in shown[0].data["text/html"]
    assert '<span class="chronum-state">succeeded</span>' in shown[0].data["text/html"]
    assert [o.data for o in shown[1:]] == [{"text/plain": ""}] * 5
    assert [o.text for o in outputs if o.output_type == "stream"] == ["succeeded\n"]
