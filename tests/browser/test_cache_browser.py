"""A cached step as a user sees it in JupyterLab: the cell run twice with ``--cache``, the
second run's view shows every step in the ``cached`` colour, with the reason in its table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from .lab import Lab, open_notebook, run_all, screenshot, wait_all_executed

pytestmark = pytest.mark.timeout(240)

CELL = """%%chronum cached-demo --cache
steps:
  - name: load
    executor: python
    call: load
  - name: clean
    executor: python
    call: clean
    needs: [load]"""

#: Every table row of the last run's view: its state class, its background and its reason.
ROWS = """() => {
  const views = [...document.querySelectorAll(".chronum-view:not([data-run-id='dry-run'])")];
  const view = views[views.length - 1];
  if (!view) return null;
  return [...view.querySelectorAll(".chronum-table tr")].filter((tr) => tr.querySelector("td"))
    .map((tr) => ({
      step: tr.querySelector("td").innerText.trim(),
      state: ((tr.getAttribute("class") || "").match(/state-([a-z_]+)/) || [])[1] || null,
      background: getComputedStyle(tr).backgroundColor,
      reason: (tr.querySelector("td.chronum-reason") || {innerText: ""}).innerText.trim(),
    }));
}"""

CACHED_RGB = "rgb(216, 243, 220)"  # render.STATE_COLORS["cached"], #d8f3dc


def _notebook(root: Path) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in (
        "%load_ext chronum",
        "def load():\n    return [3, 1, 2]\n\n\ndef clean(load):\n    return sorted(load)",
        CELL, CELL)]
    (root / "cache").mkdir(exist_ok=True)
    nbformat.write(nb, root / "cache" / "cached.ipynb")
    return "cache/cached.ipynb"


def test_a_cached_run_shows_the_cached_colour_and_why(page: Any, lab: Lab) -> None:
    relpath = _notebook(lab.root)
    open_notebook(page, lab, relpath)
    run_all(page)
    wait_all_executed(page)
    page.wait_for_function(f"() => {{ const r = ({ROWS})(); "
                           "return r && r.length === 2 && r.every((x) => x.state); }",
                           timeout=60_000)
    rows = page.evaluate(ROWS)
    screenshot(page, "cache-cached-run", ".chronum-view:last-of-type")
    assert [r["step"] for r in rows] == ["load", "clean"]
    assert [r["state"] for r in rows] == ["cached", "cached"]
    assert {r["background"] for r in rows} == {CACHED_RGB}
    for row in rows:
        assert row["reason"].startswith("cached: same key as run "), row
        assert row["reason"].endswith(f"step {row['step']}"), row
