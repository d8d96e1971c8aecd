"""A saved notebook never shows a dead widget, even after its kernel was killed with SIGKILL.

The issue's scenario in JupyterLab + Chromium: a flow with a long `sleep` step runs in a cell,
the notebook is saved while it runs, the kernel process is killed outright (no shutdown hook
runs), and the notebook is opened again in a fresh page. What it shows is the run's picture as
it was saved, with no "Error displaying widget: model not found" and no Cancel button (the
button asks the new kernel, which knows nothing of the run).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.error
from pathlib import Path
from typing import Any

import nbformat
import pytest

from .lab import Lab, open_notebook, poll, run_all, screenshot
from .test_live_view import PROBE, VIEW

pytestmark = pytest.mark.timeout(240)

SLEEPY = """%%chronum sleepy --db .chronum-nb/sleepy.db
steps:
  - name: first
    run: echo first
  - name: nap
    run: echo $$ > nap.pid; exec sleep 60
    needs: [first]
  - name: after
    run: echo after
    needs: [nap]"""

#: The first output of the live view, for screenshots.
HEADER = ".chronum-part-header"
#: Every widget error JupyterLab can print in an output.
DEAD = ["model not found", "Error displaying widget", "Error rendering widget"]


def _saved(lab: Lab, relpath: str, needle: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            model = lab.api(f"/api/contents/{relpath}?content=1")
        except urllib.error.HTTPError as exc:  # read while the server was writing the file
            if exc.code not in (400, 500):  # 400: "Unreadable Notebook", an empty file
                raise
        else:
            if needle in json.dumps(model["content"]):
                return dict(model["content"])
        time.sleep(0.2)
    raise AssertionError(f"the notebook was not saved with {needle!r}")


def _kill(pid_file: Path) -> None:
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_a_notebook_saved_mid_run_reopens_without_a_dead_widget_after_kill_9(
        browser: Any, lab: Lab) -> None:
    folder = lab.root / "dead"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
                    "%load_ext chronum\nimport os\n"
                    "open('kernel.pid', 'w').write(str(os.getpid()))"),
                nbformat.v4.new_code_cell(SLEEPY)]
    nbformat.write(nb, folder / "sleepy.ipynb")
    kernel_pid, nap_pid = folder / "kernel.pid", folder / "nap.pid"

    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page = context.new_page()
        open_notebook(page, lab, "dead/sleepy.ipynb")
        run_all(page)
        poll(page, PROBE, lambda s: bool(s) and s["state"] == "running"
             and s["nodes"].get("nap") == "running", timeout=60)
        # The live Cancel button is drawn: the kernel said the run is live.
        page.wait_for_selector("button.chronum-cancel", state="visible", timeout=20_000)
        deadline = time.monotonic() + 20
        while not nap_pid.exists():
            assert time.monotonic() < deadline, "the nap step did not start"
            time.sleep(0.1)
        screenshot(page, "dead-kernel-running", HEADER)

        page.locator(".jp-Notebook .jp-Cell").first.click()
        page.keyboard.press("Control+s")
        saved = _saved(lab, "dead/sleepy.ipynb", "chronum-live")
        # What the file holds is HTML (and the Cancel control's own type), never a widget.
        outputs = [o for c in saved["cells"] for o in c.get("outputs", [])]
        kinds = {k for o in outputs for k in o.get("data", {})}
        assert "application/vnd.jupyter.widget-view+json" not in kinds, kinds
        assert "widgets" not in saved["metadata"]
        assert "application/vnd.chronum.cancel+json" in kinds  # saved while live

        _kill(kernel_pid)  # outright: no shutdown hook runs
        page.close()
    finally:
        context.close()
        _kill(nap_pid)  # the step the dead kernel left (the supervisor's, in real life)

    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page = context.new_page()
        open_notebook(page, lab, "dead/sleepy.ipynb")
        page.wait_for_selector(f"{VIEW} .chronum-state", timeout=30_000)
        # The Cancel control asked the (restarted) kernel and got no live run: it stays hidden.
        time.sleep(3)
        screenshot(page, "dead-kernel-reopened", HEADER)
        text = page.locator(".jp-Notebook").inner_text()
        for words in DEAD:
            assert words not in text, text
        assert page.locator(".jp-OutputArea-output:has-text('Error')").count() == 0
        assert page.locator("button.chronum-cancel:visible").count() == 0
        # The run's picture as it was saved: the run running, its graph and table.
        shown = page.evaluate(PROBE)
        assert shown["state"] == "running", shown
        assert set(shown["rows"]) == {"first", "nap", "after"}, shown
        assert shown["rows"]["first"] == "succeeded" and shown["rows"]["nap"] == "running"
        # the log panel followed the step that printed, though it printed before the view came
        assert "first" in page.locator(".chronum-log-text").inner_text()
    finally:
        context.close()
        lab.delete_sessions()


SHORT = """%%chronum short --db .chronum-nb/short.db
steps:
  - name: nap
    run: sleep 4; echo woke
  - name: after
    run: echo after
    needs: [nap]"""


def test_a_run_that_ended_while_the_page_was_closed_shows_its_final_picture(
        browser: Any, lab: Lab) -> None:
    import chronum

    folder = lab.root / "closed"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("%load_ext chronum"),
                nbformat.v4.new_code_cell(SHORT)]
    nbformat.write(nb, folder / "short.ipynb")
    db = folder / ".chronum-nb" / "short.db"
    try:
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        try:
            page = context.new_page()
            open_notebook(page, lab, "closed/short.ipynb")
            run_all(page)
            page.wait_for_selector("button.chronum-cancel", state="visible", timeout=30_000)
            page.locator(".jp-Notebook .jp-Cell").first.click()
            page.keyboard.press("Control+s")
            _saved(lab, "closed/short.ipynb", "chronum-live")  # saved mid-run
        finally:
            context.close()  # the page goes; the kernel and its run go on

        deadline = time.monotonic() + 60
        while not (db.exists() and chronum.history(db=db)["status"].tolist() == ["succeeded"]):
            assert time.monotonic() < deadline, "the run did not end"
            time.sleep(0.2)

        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        try:
            page = context.new_page()
            open_notebook(page, lab, "closed/short.ipynb")
            # the file shows the run as saved, running; the kernel hands over its final picture
            page.wait_for_selector(".chronum-static .chronum-state", timeout=30_000)
            assert page.locator(".chronum-static .chronum-state").text_content() == "succeeded"
            assert page.locator(".chronum-live").count() == 0
            assert page.locator("button.chronum-cancel:visible").count() == 0
            screenshot(page, "closed-page-reopened", ".chronum-static")
            page.locator(".jp-Notebook .jp-Cell").first.click()
            page.keyboard.press("Control+s")
            saved = _saved(lab, "closed/short.ipynb", "chronum-static")
            text = json.dumps(saved)
            assert "chronum-live" not in text and "application/vnd.chronum.cancel+json" not in text
        finally:
            context.close()
    finally:
        lab.delete_sessions()
