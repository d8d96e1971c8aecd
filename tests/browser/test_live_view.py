"""The live view as a user sees it: JupyterLab + Debian Chromium, everything read from the page.

The quickstart notebook is run with Run All; the page is polled every 100 ms while its flow
runs, so a step is seen ``running`` and then ``succeeded`` in the browser, not only in Python
state. A long flow is cancelled with the view's Cancel button. Screenshots go to
build/screenshots/.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
from pathlib import Path
from typing import Any

import nbformat
import pytest

from .lab import ROOT, Lab, open_notebook, poll, run_all, screenshot, wait_all_executed

pytestmark = pytest.mark.timeout(240)

#: The run's view (live outputs or final static picture), not the dry run's drawing: the
#: state word, every graph node's state and every table row's state.
#: The graph of a view: the live view's inline SVG, or the SVG inside the <img> of a final
#: static picture, decoded (what the image shows is what is checked).
GRAPH_JS = """
  const graphOf = (view) => {
    const img = view.querySelector(".chronum-graph img");
    if (!img) return view.querySelector(".chronum-graph");
    const bytes = Uint8Array.from(atob(img.getAttribute("src").split(",")[1]),
                                  (c) => c.charCodeAt(0));
    return new DOMParser().parseFromString(new TextDecoder().decode(bytes), "image/svg+xml");
  };
"""

#: The live view is several outputs of one cell (header, Cancel, style, graph, table, log):
#: the view is the output area of the cell that shows the page's first run (the quickstart's
#: deploy-api cell; later cells run other flows, and a page opened from disk renders its
#: cells one after another). Texts are read as textContent: a cell scrolled out of sight is
#: not rendered (content-visibility), and the innerText of what is not rendered is empty.
VIEW_JS = """
  const dry = (v) => v.getAttribute("data-run-id") === "dry-run"  // a trusted page
      || / dry run /.test((v.querySelector(".chronum-header") || {}).textContent || "");
  const views = [...document.querySelectorAll(".chronum-view")].filter((v) => !dry(v));
  const first = views[0];
  const view = first ? (first.closest(".jp-OutputArea") || first) : null;
"""

PROBE = """() => {""" + GRAPH_JS + VIEW_JS + """
  if (!view) return null;
  const stateOf = (el) => el.getAttribute("data-state")
      || getComputedStyle(el).getPropertyValue("--chronum-state").trim() || "pending";
  const nodes = {};
  const graph = graphOf(view);
  for (const g of graph ? graph.querySelectorAll("g[data-step]") : []) {
    nodes[g.getAttribute("data-step")] = stateOf(g);
  }
  const rows = {};
  // data-* attributes do not survive the sanitizer of an untrusted notebook; classes do
  for (const tr of view.querySelectorAll(".chronum-table tr")) {
    const cell = tr.querySelector("td");
    const word = (tr.getAttribute("class") || "").match(/state-([a-z_]+)/);
    if (!cell) continue;
    rows[tr.getAttribute("data-step") || cell.textContent.trim()] =
        tr.getAttribute("data-state") || (word ? word[1] : null);
  }
  const label = view.querySelector(".chronum-state");
  return {state: label ? label.textContent.trim() : null, nodes, rows};
}"""

FINAL_NODES = """() => {""" + GRAPH_JS + VIEW_JS + """
  return [...graphOf(view).querySelectorAll("g[data-step]")].map((g) => ({
    step: g.getAttribute("data-step"),
    classes: g.getAttribute("class"),
    fill: g.querySelector("rect, path, polygon").getAttribute("fill"),
  }));
}"""

#: The run's view on the page, for screenshots.
VIEW = ".chronum-view:not([data-run-id='dry-run'])"
TERMINAL = {"succeeded", "failed", "cancelled", "interrupted"}
SUCCEEDED_FILL = "#b7e4c7"  # render.STATE_COLORS["succeeded"], written into the final SVG


def _copy_quickstart(root: Path) -> Path:
    """The quickstart and the example it runs, with each `echo` step slowed to ~1 s.

    The example's steps take milliseconds, faster than the view's few updates a second; a
    second each lets the page show them running. Saved outputs are cleared, so every view on
    the page comes from this run.
    """
    shutil.copytree(ROOT / "examples", root / "examples",
                    ignore=shutil.ignore_patterns("build", ".chronum*"))
    nb = nbformat.read(ROOT / "notebooks" / "01-quickstart.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            if cell.source.startswith("%%chronum") and "--dry-run" not in cell.source:
                cell.source = cell.source.replace("run: echo", "run: sleep 1 && echo")
    path = root / "notebooks" / "01-quickstart.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _sequences(samples: list[Any], key: str) -> dict[str, list[str]]:
    """Per step, the distinct states seen in order (consecutive repeats collapsed)."""
    seen: dict[str, list[str]] = {}
    for sample in samples:
        for step, state in (sample or {}).get(key, {}).items():
            states = seen.setdefault(step, [])
            if not states or states[-1] != state:
                states.append(state)
    return seen


def test_quickstart_lights_up_then_ends_green(page: Any, lab: Lab) -> None:
    _copy_quickstart(lab.root)
    open_notebook(page, lab, "notebooks/01-quickstart.ipynb")
    run_all(page)
    samples: list[Any] = []
    shot_taken = False

    def done(sample: Any) -> bool:
        nonlocal shot_taken
        samples.append(sample)
        if sample and not shot_taken and "running" in sample["nodes"].values():
            screenshot(page, "quickstart-running", VIEW)
            shot_taken = True
        return bool(sample) and sample["state"] in TERMINAL

    poll(page, PROBE, done, timeout=120)
    wait_all_executed(page)
    screenshot(page, "quickstart-finished", VIEW)
    samples.append(page.evaluate(PROBE))  # the final picture (the label may lead the graph)

    nodes = _sequences(samples, "nodes")
    rows = _sequences(samples, "rows")
    assert samples[-1]["state"] == "succeeded"
    # seen running in the graph and in the table while the cell ran, then succeeded
    watched = [s for s, states in nodes.items() if "running" in states]
    assert watched, f"no node was seen running: {nodes}"
    for step in watched:
        assert nodes[step][-1] == "succeeded", nodes
        assert nodes[step].index("running") < nodes[step].index("succeeded"), nodes
    assert any("running" in states for states in rows.values()), rows
    final = page.evaluate(FINAL_NODES)
    assert sorted(n["step"] for n in final) == sorted(
        ["build", "test", "lint", "deploy", "preprocess", "deployed"])
    for node in final:
        assert "state-succeeded" in node["classes"].split(), node
        assert node["fill"] == SUCCEEDED_FILL, node

    # saved and reloaded, the notebook still shows the final picture
    page.locator(".jp-Notebook .jp-Cell").first.click()
    page.keyboard.press("Control+s")
    _wait_saved_with_view(lab, "notebooks/01-quickstart.ipynb")
    page.reload()
    page.wait_for_selector(f"{VIEW} .chronum-graph img", timeout=60_000)
    screenshot(page, "quickstart-reloaded", VIEW)
    reloaded = page.evaluate(PROBE)
    assert reloaded["state"] == "succeeded"
    assert set(reloaded["nodes"].values()) == {"succeeded"}, reloaded


def _wait_saved_with_view(lab: Lab, relpath: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            model = lab.api(f"/api/contents/{relpath}?content=1")
        except urllib.error.HTTPError as exc:  # read while the server was writing the file
            if exc.code not in (400, 500):  # 400: "Unreadable Notebook", an empty file
                raise
        else:
            if "chronum-view" in json.dumps(model["content"]):
                return
        time.sleep(0.2)
    raise AssertionError("the notebook was not saved with its run's picture")


LONG_FLOW = """%%chronum long --db .chronum-nb/long.db --max-parallel 2
steps:
  - name: wait-a
    run: sleep 30 & echo $! >> pids.txt; echo $$ >> pids.txt; wait
  - name: wait-b
    run: sleep 30 & echo $! >> pids.txt; echo $$ >> pids.txt; wait
  - name: after
    run: echo never
    needs: [wait-a, wait-b]"""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has exited; only its parent has not reaped it yet
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(") ", 1)[-1].split()[0] != "Z"


def test_cancel_button_stops_a_long_flow(page: Any, lab: Lab) -> None:
    folder = lab.root / "cancel"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("%load_ext chronum"),
                nbformat.v4.new_code_cell(LONG_FLOW),
                nbformat.v4.new_code_cell("run = _\nprint('status:', run.status)")]
    nbformat.write(nb, folder / "long.ipynb")
    pids_file = folder / "pids.txt"

    open_notebook(page, lab, "cancel/long.ipynb")
    run_all(page)
    poll(page, PROBE, lambda s: bool(s) and s["state"] == "running", timeout=60)
    deadline = time.monotonic() + 30
    while len(pids_file.read_text().split() if pids_file.exists() else []) < 4:
        assert time.monotonic() < deadline, "the steps did not start"
        time.sleep(0.1)
    pids = [int(p) for p in pids_file.read_text().split()]
    assert all(_pid_alive(p) for p in pids)
    screenshot(page, "cancel-running", VIEW)

    page.locator("button.chronum-cancel").click()
    # the promise: the run reads `cancelled` within 2 s of the click
    states = poll(page, PROBE, lambda s: bool(s) and s["state"] != "running", timeout=2.0)
    assert states[-1]["state"] == "cancelled", states[-1]
    left = [p for p in pids if _pid_alive(p)]
    assert left == [], f"step processes still alive after cancel: {left}"

    wait_all_executed(page, timeout=30)
    screenshot(page, "cancel-finished", VIEW)
    last_cell = page.locator(".jp-Notebook .jp-CodeCell").last
    assert "status: cancelled" in last_cell.locator(".jp-OutputArea").inner_text()
    final = page.evaluate(PROBE)
    assert final["rows"] == {"wait-a": "cancelled", "wait-b": "cancelled", "after": "skipped"}
    history = json.loads(_history_json(folder / ".chronum-nb" / "long.db"))
    assert [(r["flow"], r["status"]) for r in history] == [("long", "cancelled")]


def _history_json(db: Path) -> str:
    import chronum

    frame = chronum.history(db=db)
    return str(frame[["flow", "status"]].to_json(orient="records"))


def _open_saved_quickstart(page: Any, lab: Lab) -> Any:
    folder = lab.root / "saved"
    folder.mkdir(exist_ok=True)
    shutil.copy(ROOT / "notebooks" / "01-quickstart.ipynb", folder / "01-quickstart.ipynb")
    open_notebook(page, lab, "saved/01-quickstart.ipynb")
    page.wait_for_selector(f"{VIEW} .chronum-state", timeout=30_000)
    screenshot(page, "quickstart-from-disk", VIEW)
    return page.evaluate(PROBE)


STEPS = ["build", "test", "lint", "deploy", "preprocess", "deployed"]


def test_saved_quickstart_shows_its_final_state(page: Any, lab: Lab) -> None:
    """Opened from disk (a clone, Binder), nothing run: the saved run's state and table show.

    A notebook that this Jupyter did not sign is untrusted: its HTML outputs are sanitized.
    """
    final = _open_saved_quickstart(page, lab)
    assert final["state"] == "succeeded"
    assert final["rows"] == dict.fromkeys(STEPS, "succeeded")


def test_saved_quickstart_shows_its_graph(page: Any, lab: Lab) -> None:
    final = _open_saved_quickstart(page, lab)
    assert final["nodes"] == dict.fromkeys(STEPS, "succeeded")
