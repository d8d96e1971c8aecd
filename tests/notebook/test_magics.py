"""``%%chronum`` and ``%chronum`` in a real kernel, asserted on the outputs nbclient records."""

from __future__ import annotations

import base64
import re
import subprocess
import sys

from .conftest import html_of, text_of

FLOW = """%%chronum demo
steps:
  - name: build
    run: echo building
  - name: test
    run: echo testing
    needs: [build]
"""


WIDGET = "application/vnd.jupyter.widget-view+json"


def test_cell_runs_the_flow_shows_it_once_and_returns_the_run(notebook):
    # The view is due after show_after seconds; 30 s instead of 0.25 s keeps a loaded machine
    # (a two-echo run taking longer than 0.25 s) from making a widget this test says is not made.
    nb = notebook(["%load_ext chronum\n%config ChronumMagics.show_after = 30", FLOW,
                   "print(_.status, sorted(_.steps['step']))", "print('next cell ran')"])
    cell = nb.cells[1]
    assert len(cell.outputs) == 1  # the live view, replaced in place by its final picture
    out = cell.outputs[0]
    assert out.output_type == "display_data"
    assert out.data["text/plain"] == "<chronum run demo: succeeded (2 steps)>"
    page = out.data["text/html"]
    assert 'class="chronum-graph"' in page and 'class="chronum-table"' in page
    assert re.search(r'<span class="chronum-state">succeeded</span>', page)
    (image,) = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', page)
    graph = base64.b64decode(image).decode()
    assert len(re.findall(r'class="node state-succeeded" data-step="(build|test)"', graph)) == 2
    # Over before the live view was due: only the final picture (no live outputs, no widget).
    assert "widgets" not in nb.metadata
    assert text_of(nb.cells[2]) == "succeeded ['build', 'test']\n"
    assert text_of(nb.cells[3]) == "next cell ran\n"


def test_a_run_that_lasts_shows_the_live_view_then_its_final_picture(notebook):
    slow = FLOW.replace("run: echo building", "run: sleep 0.6 && echo building")
    nb = notebook(["%load_ext chronum", slow, "print(_.status)"])
    # The live view's outputs (header, Cancel, style, graph, table, log), updated in place:
    # the header's became the final picture, the others are empty; never a widget.
    out, *rest = nb.cells[1].outputs
    assert out.data["text/plain"] == "<chronum run demo: succeeded (2 steps)>"
    assert re.search(r'<span class="chronum-state">succeeded</span>', out.data["text/html"])
    assert 'class="chronum-view chronum-static"' in out.data["text/html"]
    assert [o.data for o in rest] == [{"text/plain": ""}] * 5
    assert not any(WIDGET in o.get("data", {}) for c in nb.cells for o in c.outputs)
    assert "widgets" not in nb.metadata
    assert text_of(nb.cells[2]) == "succeeded\n"


def test_spec_error_shows_the_location_without_a_traceback(notebook):
    nb = notebook(["%load_ext chronum",
                   "%%chronum\nsteps:\n  - name: a\n    rnu: echo hi\n",
                   "print('still going')"], allow_errors=True)
    shown = text_of(nb.cells[1])
    assert "cell:4:5: steps[0]: unknown key 'rnu' (did you mean 'run'?)" in shown
    assert "Traceback" not in shown and "File " not in shown
    assert text_of(nb.cells[2]) == "still going\n"


def test_failed_run_is_shown_failed_and_raises_only_with_raise(notebook):
    nb = notebook(["%load_ext chronum",
                   "%%chronum bad\nsteps:\n  - name: f\n    run: exit 3\n",
                   "print(_.status)",
                   "%%chronum bad --raise\nsteps:\n  - name: f\n    run: exit 3\n"],
                  allow_errors=True)
    assert nb.cells[1].outputs[0].data["text/plain"] == "<chronum run bad: failed (1 step)>"
    assert all(o.output_type != "error" for o in nb.cells[1].outputs)
    assert text_of(nb.cells[2]) == "failed\n"
    errors = [o for o in nb.cells[3].outputs if o.output_type == "error"]
    assert [e.ename for e in errors] == ["RunFailedError"]


def test_background_returns_a_running_handle_then_wait_gives_the_run(notebook):
    nb = notebook(["%load_ext chronum",
                   "%%chronum bg --background\nsteps:\n  - name: s\n    run: sleep 1\n",
                   "h = _\nprint(h.status)",
                   "r = await h.wait()\nprint(r.status, h.status, r.run_id == h.run_id)",
                   "print(type(h).__name__, (await h.wait()) is r)"])
    assert text_of(nb.cells[2]) == "running\n"
    assert text_of(nb.cells[3]) == "succeeded succeeded True\n"
    assert nb.cells[1].outputs[0].data["text/plain"] == "<chronum run bg: succeeded (1 step)>"


NOTEBOOK_FUNCTIONS = """
import asyncio
import pandas as pd
await asyncio.sleep(0)
kernel_loop = asyncio.get_running_loop()

def load():
    return pd.DataFrame({"x": [1.0, None, 3.0]})

def clean(load):
    return load.dropna()

async def report(clean):
    await asyncio.sleep(0.01)
    print("rows:", len(clean))
    return {"rows": len(clean), "same_loop": asyncio.get_running_loop() is kernel_loop}
"""

PIPELINE = """%%chronum frames --retry 1
steps:
  - name: load
    executor: python
    call: load
  - name: clean
    executor: python
    call: clean
    needs: [load]
  - name: report
    executor: python
    call: report
    needs: [clean]
"""


def test_dataframes_flow_through_notebook_functions_and_async_steps_use_the_kernel_loop(
        notebook):
    nb = notebook(["%load_ext chronum", NOTEBOOK_FUNCTIONS, PIPELINE,
                   "run = _\nprint(run.status, type(run.outputs['clean']).__name__, "
                   "list(run.outputs['clean']['x']), run.outputs['report'])",
                   "%chronum logs last report"])
    assert text_of(nb.cells[3]) == ("succeeded DataFrame [1.0, 3.0] "
                                    "{'rows': 2, 'same_loop': True}\n")
    assert text_of(nb.cells[4]) == "rows: 2\n"


def test_history_show_logs_and_resume(notebook, tmp_path):
    flag = tmp_path / "ready"
    nb = notebook([
        "%load_ext chronum",
        f"%%chronum flaky\nsteps:\n  - name: first\n    run: echo one\n"
        f"  - name: second\n    run: test -e {flag} && echo two\n    needs: [first]\n",
        "failed = _\nprint(failed.status)",
        f"open({str(flag)!r}, 'w').close()",
        "%chronum resume last",
        "print(_.status)",
        "%chronum history",
        "%chronum logs last second",
        "%chronum show last",
        "import chronum\nprint(chronum.history()['parent_run_id'][0] == failed.run_id)",
    ])
    assert text_of(nb.cells[2]) == "failed\n"
    assert text_of(nb.cells[5]) == "succeeded\n"
    history = nb.cells[6].outputs[0].data["text/plain"]
    assert "flaky" in history and "succeeded" in history and "failed" in history
    assert text_of(nb.cells[7]) == "two\n"
    page = html_of(nb.cells[8])
    assert 'class="chronum-timeline"' in page
    assert 'data-step="first" data-state="cached"' in page
    (image,) = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', page)
    assert 'class="edge"' in base64.b64decode(image).decode()  # the cell's flow: its needs
    assert text_of(nb.cells[9]) == "True\n"


def test_dry_run_draws_and_records_nothing(notebook):
    nb = notebook(["%load_ext chronum", FLOW.replace("demo", "demo --dry-run"),
                   "import os\nprint(os.path.exists('.chronum/chronum.db'))"])
    out = nb.cells[1].outputs[0]
    assert out.data["text/plain"] == "<chronum run demo: dry-run (2 steps)>"
    assert 'data-state="pending"' in out.data["text/html"]
    assert text_of(nb.cells[2]) == "False\n"


def test_a_cell_run_resumes_in_a_later_kernel(notebook, tmp_path):
    """The cell's text is kept with the run: a new kernel (after a restart, or a crash) resumes
    it with `%chronum resume`, its notebook functions defined again."""
    flag = tmp_path / "fixed"
    define = ("def second():\n"
              f"    if not __import__('os').path.exists({str(flag)!r}):\n"
              "        raise RuntimeError('not yet')\n"
              "    return 2\n")
    cell = ("%%chronum twice --retry 0\nsteps:\n  - name: first\n    run: echo one\n"
            "  - name: second\n    executor: python\n    call: second\n    needs: [first]\n")
    first = notebook(["%load_ext chronum", define, cell, "print(_.status, _.errors)"])
    assert text_of(first.cells[3]) == "failed {'second': 'RuntimeError: not yet'}\n"
    cli = subprocess.run([sys.executable, "-m", "chronum", "resume", "last"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 2
    assert "came from a notebook cell; resume it in a notebook" in cli.stderr
    later = notebook(["%load_ext chronum", define, f"open({str(flag)!r}, 'w').close()",
                      "%chronum resume last",
                      "import chronum\nr = _\n"
                      "print(r.status, r.flow.name, chronum.steps(r.run_id)['status'].tolist())"])
    assert text_of(later.cells[4]) == "succeeded twice ['cached', 'succeeded']\n"
