"""The live view's polish and the cell editor, as a user sees them in JupyterLab + Chromium:
the colour legend, a running step's time as a node badge, a failed step's log shown open in
the final picture, and a ``%%chronum`` cell highlighted as YAML (Chronum's labextension)."""

from __future__ import annotations

import time
from typing import Any

import nbformat
import pytest

from .lab import Lab, open_notebook, poll, run_all, screenshot, wait_all_executed

pytestmark = pytest.mark.timeout(240)

FLOW = """%%chronum polish --db .chronum-nb/polish.db
steps:
  - name: slow
    run: sleep 4 && echo slept
  - name: bad
    run: echo about to fail; exit 3
    needs: [slow]"""

#: The live view while the run goes on: its legend, and each node's running-time badge (the
#: view is several outputs of its cell: their output area).
LIVE = """() => {
  const last = [...document.querySelectorAll(".chronum-view")].pop();
  const view = last ? (last.closest(".jp-OutputArea") || last) : null;
  if (!view) return null;
  const badges = {};
  for (const el of view.querySelectorAll(".chronum-elapsed-badge")) {
    const step = el.closest("g[data-step]").getAttribute("data-step");
    badges[step] = getComputedStyle(el, "::after").content;
  }
  const legend = [...view.querySelectorAll(".chronum-legend-item")].map(
      (el) => el.getAttribute("data-state"));
  const why = [...view.querySelectorAll(".chronum-table .chronum-reason")].map(
      (el) => el.innerText.trim());
  const state = view.querySelector(".chronum-state");
  return {legend, badges, why, state: state ? state.innerText.trim() : null};
}"""

#: The final picture's logs: which are open, and what they show.
LOGS = """() => {
  const view = [...document.querySelectorAll(".chronum-static")].pop();
  if (!view) return null;
  return [...view.querySelectorAll("details.chronum-log")].map((d) => ({
    step: d.getAttribute("data-step"), open: d.open,
    visible: d.querySelector("pre") ? d.querySelector("pre").getBoundingClientRect().height > 0
                                    : false,
    text: d.innerText}));
}"""

#: How the editor of the %%chronum cell marks its tokens.
EDITOR = """() => {
  const cell = document.querySelector(".jp-CodeCell[data-chronum-language='yaml']");
  if (!cell) return null;
  const content = cell.querySelector(".cm-content");
  const plain = getComputedStyle(content).color;
  const spans = [...content.querySelectorAll(".cm-line span")];
  const key = spans.find((s) => s.textContent === "steps");
  return {key: key ? key.className : null,
          keyColor: key ? getComputedStyle(key).color : null, plain};
}"""


def _notebook(lab: Lab) -> str:
    folder = lab.root / "polish"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("%load_ext chronum"),
                nbformat.v4.new_code_cell(FLOW),
                nbformat.v4.new_code_cell("print('after:', _.status)")]
    nbformat.write(nb, folder / "polish.ipynb")
    return "polish/polish.ipynb"


def test_legend_badge_open_failure_and_yaml_highlighting(page: Any, lab: Lab) -> None:
    open_notebook(page, lab, _notebook(lab))
    # The %%chronum cell is YAML to the editor before anything runs.
    editor = poll(page, EDITOR, lambda e: bool(e) and e["key"] is not None, timeout=30)[-1]
    assert editor["keyColor"] != editor["plain"], editor
    screenshot(page, "polish-yaml-cell", ".jp-CodeCell[data-chronum-language='yaml']")

    run_all(page)
    seen = poll(page, LIVE, lambda s: bool(s) and any(
        b not in ("none", "normal", '""') for b in s["badges"].values()), timeout=60)
    live = seen[-1]
    assert live["legend"][:4] == ["pending", "running", "retrying", "succeeded"], live
    assert "failed" in live["legend"] and "cancelled" in live["legend"]
    assert live["badges"]["slow"].strip('"').endswith(" s"), live
    assert live["badges"]["bad"] in ("none", "normal", '""'), live  # not running: no clock
    assert any(w.startswith("running for ") for w in live["why"]), live
    screenshot(page, "polish-running", ".chronum-part-header")

    wait_all_executed(page, timeout=60)
    time.sleep(0.5)
    logs = page.evaluate(LOGS)
    assert logs is not None
    (bad,) = [log for log in logs if log["step"] == "bad"]
    assert bad["open"] and bad["visible"], logs
    assert "exited with code 3" in bad["text"] and "about to fail" in bad["text"]
    assert all(not log["open"] for log in logs if log["step"] != "bad"), logs
    screenshot(page, "polish-failed", ".chronum-static")
    assert "after: failed" in page.locator(".jp-OutputArea-output").last.inner_text()
    # Still YAML once the kernel told the notebook its language (which resets every cell's).
    after = page.evaluate(EDITOR)
    assert after is not None and after["keyColor"] != after["plain"], after
