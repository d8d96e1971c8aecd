"""A newcomer's first notebook, in JupyterLab + Debian Chromium: the mistakes a new user makes
are each one line in their cell, never a traceback; a failed step, a cancelled run, two runs at
once, a cell run again and a restarted kernel all leave a store that tells the same story.

Everything is read from the page, as the user sees it, and then from the store.
"""

from __future__ import annotations

import re
from typing import Any

import nbformat
import pytest

import chronum

from .lab import (
    Lab,
    accept_kernel_dialog,
    open_notebook,
    poll,
    screenshot,
    wait_all_executed,
)

pytestmark = pytest.mark.timeout(480)

HELLO = """%%chronum
name: hello
steps:
  - name: build
    run: echo building
  - name: test
    run: echo testing
    needs: [build]"""

#: The mistakes, each with the one line its cell must show (after IPython's "UsageError: ").
MISTAKES = [
    ("""%%chronum
name: typo
steps:
  - name: build
     run: echo building""",
     "cell:5:6: bad indentation: expected 4 spaces, found 5 (indent it as line 4 is)"),
    ("""%%chronum
name: unknown-key
steps:
  - name: build
    runn: echo building""",
     "cell:5:5: steps[0]: unknown key 'runn' (did you mean 'run'?)"),
    ("""%%chronum
name: no-module
steps:
  - name: load
    executor: python
    call: no_such_module:load""",
     "cell:6:5: steps[0].call: cannot import module 'no_such_module': ModuleNotFoundError: "
     "No module named 'no_such_module'"),
]

FAILING = """%%chronum
name: failing
steps:
  - name: bad
    run: echo about to fail; exit 3
  - name: after
    run: echo never
    needs: [bad]"""

FIRST = """%%chronum first --background
steps:
  - name: slow
    run: sleep 2 && echo first done"""

SECOND = """%%chronum second
steps:
  - name: quick
    run: sleep 1 && echo second done"""

WAIT = "%chronum wait"

LONG = """%%chronum long
steps:
  - name: wait-a
    run: sleep 60
  - name: after
    run: echo never
    needs: [wait-a]"""

FRAMES = """import chronum
runs = chronum.runs()
print(sorted(zip(runs["flow"], runs["status"])))
chronum.steps()"""

#: A mistake in Python: the error's one line, as the terminal prints it.
NO_SUCH_RUN = "import chronum\nchronum.steps('nosuch')"

CELLS = ["%load_ext chronum", HELLO, *(text for text, _ in MISTAKES), NO_SUCH_RUN, FAILING,
         FIRST, SECOND, WAIT, LONG, FRAMES]
HELLO_CELL, FIRST_MISTAKE, NO_SUCH_RUN_CELL = 1, 2, 2 + len(MISTAKES)
FAILING_CELL = NO_SUCH_RUN_CELL + 1
LONG_CELL, FRAMES_CELL = len(CELLS) - 2, len(CELLS) - 1

#: Each code cell's outputs: their MIME type and text (textContent: a cell out of sight is
#: not rendered, and innerText of what is not rendered is empty).
OUTPUTS = """() => [...document.querySelectorAll(".jp-Notebook .jp-CodeCell")].map(
  (cell) => [...cell.querySelectorAll(".jp-OutputArea-output")].map(
    (o) => ({mime: o.getAttribute("data-mime-type"), text: o.textContent})))"""

#: The state word of the live view in one cell.
STATE = """(i) => {
  const cell = document.querySelectorAll(".jp-Notebook .jp-CodeCell")[i];
  const label = cell ? cell.querySelector(".chronum-state") : null;
  return label ? label.textContent.trim() : null;
}"""

EXPECTED_RUNS = [("failing", "failed"), ("first", "succeeded"), ("hello", "succeeded"),
                 ("long", "cancelled"), ("second", "succeeded")]


def _notebook(lab: Lab) -> str:
    folder = lab.root / "newcomer"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(text) for text in CELLS]
    nbformat.write(nb, folder / "first.ipynb")
    return "newcomer/first.ipynb"


def _text(outputs: list[dict[str, str]]) -> str:
    return "\n".join(o["text"] for o in outputs)


def _no_traceback(page: Any) -> list[list[dict[str, str]]]:
    cells: list[list[dict[str, str]]] = page.evaluate(OUTPUTS)
    for i, outputs in enumerate(cells):
        text = _text(outputs)
        for words in ("Traceback", "Task was destroyed", "Error displaying widget",
                      "RuntimeWarning", "never awaited"):
            assert words not in text, (i, text)
    return cells


PROMPT = """(i) => {
  const cell = document.querySelectorAll(".jp-Notebook .jp-CodeCell")[i];
  return cell.querySelector(".jp-InputArea-prompt").textContent;
}"""


def _run_cell(page: Any, index: int, wait: bool = True) -> None:
    """Select one cell (command mode, by its prompt) and run it with Ctrl+Enter, as a user
    does cell by cell: Run All stops at the first cell that fails, as Jupyter always does.
    Pressed again if the page was not ready for it (the prompt did not change)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    before = page.evaluate(f"() => ({PROMPT})({index})")
    changed = f"() => ({PROMPT})({index}) !== {before!r}"
    cell = page.locator(".jp-Notebook .jp-CodeCell").nth(index)
    for _ in range(5):
        accept_kernel_dialog(page)
        cell.locator(".jp-InputArea-prompt").click()
        page.keyboard.press("Control+Enter")
        try:
            page.wait_for_function(changed, timeout=5_000)
            break
        except PlaywrightTimeout:
            continue
    else:
        raise AssertionError(f"cell {index} did not start")
    if wait:
        page.wait_for_function(
            f"""() => /\\[\\d+\\]/.test(({PROMPT})({index}))""", timeout=90_000)


def _restart_kernel(page: Any) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").first.click()
    page.locator("li[data-command='kernelmenu:restart']").click()
    page.locator(".jp-Dialog .jp-mod-accept").click()
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=60_000)


def _store_runs(db: Any) -> list[tuple[str, str]]:
    runs = chronum.runs(db=db)
    return sorted(zip(runs["flow"], runs["status"], strict=True))


def test_a_newcomers_notebook(page: Any, lab: Lab) -> None:
    path = _notebook(lab)
    db = lab.root / "newcomer" / ".chronum" / "chronum.db"
    open_notebook(page, lab, path)
    for index in range(len(CELLS)):
        if index != LONG_CELL:
            _run_cell(page, index)
            continue
        # Cancel the long run with its button, as soon as it runs.
        _run_cell(page, index, wait=False)
        poll(page, f"() => ({STATE})({index})", lambda s: s == "running", timeout=60)
        page.locator(".jp-Notebook .jp-CodeCell").nth(index).locator(
            "button.chronum-cancel").click()
        poll(page, f"() => ({STATE})({index})", lambda s: s == "cancelled", timeout=5)
    wait_all_executed(page, timeout=60)
    screenshot(page, "newcomer-notebook", ".jp-Notebook .jp-CodeCell")
    cells = _no_traceback(page)

    # Each mistake: one line in its cell, the error as `cell:line:col: what (fix)`.
    for offset, (_, line) in enumerate(MISTAKES):
        outputs = cells[FIRST_MISTAKE + offset]
        lines = [x for x in _text(outputs).splitlines() if x.strip()]
        assert lines == [f"UsageError: {line}"], lines
    lines = [x for x in _text(cells[NO_SUCH_RUN_CELL]).splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(
        "RunNotFoundError: no run matches 'nosuch' in "), lines
    # A failed step: the run is shown failed with the step's reason, and does not raise.
    failing = _text(cells[FAILING_CELL])
    assert "failed" in failing and "exited with code 3" in failing, failing
    # The frames: the history printed, and steps() drawn as a table.
    frames = _text(cells[FRAMES_CELL])
    assert str(EXPECTED_RUNS) in frames, frames
    frame_cell = page.locator(".jp-Notebook .jp-CodeCell").nth(FRAMES_CELL)
    assert frame_cell.locator("table.dataframe").count() == 1
    assert _store_runs(db) == EXPECTED_RUNS

    # The hello cell run again: a second run, in place of the first picture.
    first_hello = chronum.runs(db=db, flow="hello")["run_id"].tolist()
    _run_cell(page, HELLO_CELL)
    assert sorted(_store_runs(db)) == sorted([*EXPECTED_RUNS, ("hello", "succeeded")])
    (again,) = set(chronum.runs(db=db, flow="hello")["run_id"]) - set(first_hello)
    shown = _text(page.evaluate(OUTPUTS)[HELLO_CELL])
    assert f"run {again}" in shown and first_hello[0] not in shown, shown

    # A restarted kernel reads the same history.
    _restart_kernel(page)
    accept_kernel_dialog(page)
    _run_cell(page, FRAMES_CELL)
    cells = _no_traceback(page)
    frames = _text(cells[FRAMES_CELL])
    expected = sorted([*EXPECTED_RUNS, ("hello", "succeeded")])
    assert str(expected) in frames, frames

    # The store is consistent: every run ended, no step of it left pending or running.
    steps = chronum.steps(db=db, since=0)
    assert not steps["status"].isin(["pending", "running", "retrying"]).any(), steps
    by_run = steps.groupby("flow")["status"].apply(list).to_dict()
    assert by_run["long"] == ["cancelled", "skipped"]
    assert by_run["failing"] == ["failed", "upstream_failed"]
    assert re.fullmatch(r"(succeeded,?)+", ",".join(by_run["hello"]))
