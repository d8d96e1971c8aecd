"""Cancel of a ``call:`` step in a real kernel: with ``isolate: process`` the child is gone at
once; with ``ctx.check()`` the function stops at its next check; without either, the view,
``run.status`` and the frames say "still running" until the thread ends."""

from __future__ import annotations

import subprocess
import sys

from .conftest import html_of, text_of

STILL = "cancelled — still running in the background"

# Waits until the step runs, clicks Cancel, waits for the run.
_CANCEL = ("import asyncio, os, time\nh = _\nwhile h.view.snap.states.get('{step}') != 'running':\n"
           "    await asyncio.sleep(0.02)\nwhile not os.path.exists({ready!r}):\n"
           "    await asyncio.sleep(0.02)\nclicked = time.monotonic()\n"
           "h.view.cancel()\nr = await h.wait()\n")


def test_isolated_call_is_stopped_within_a_second(notebook, tmp_path):
    pid_file = tmp_path / "pid"
    nb = notebook([
        "%load_ext chronum",
        "import os, time\n"
        f"def slow():\n    open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "    time.sleep(60)\n",
        "%%chronum iso --background\nsteps:\n  - name: slow\n    executor: python\n    call: slow\n"
        "    isolate: process\n",
        _CANCEL.format(step="slow", ready=str(pid_file)) +
        f"pid = int(open({str(pid_file)!r}).read())\n"
        "assert pid != os.getpid()\n"
        "while os.path.exists(f'/proc/{pid}') and "
        "open(f'/proc/{pid}/stat').read().split(') ')[1][0] not in 'ZX':\n"
        "    time.sleep(0.01)\n"
        "print(r.status, r.still_running, time.monotonic() - clicked < 1.0)",
    ])
    assert text_of(nb.cells[3]) == "cancelled () True\n"


def test_ctx_check_stops_the_function_at_its_next_check(notebook, tmp_path):
    stopped, started = tmp_path / "stopped", tmp_path / "started"
    nb = notebook([
        "%load_ext chronum",
        "import time\nimport chronum.errors\n"
        f"def loop(ctx):\n    open({str(started)!r}, 'w').close()\n    n = 0\n"
        "    try:\n        while True:\n            ctx.check()\n"
        "            n += 1\n            time.sleep(0.02)\n"
        "    except chronum.errors.StepCancelledError:\n"
        f"        open({str(stopped)!r}, 'w').write(str(ctx.cancelled))\n        raise\n",
        "%%chronum checks --background\nsteps:\n  - name: loop\n    executor: python\n"
        "    call: loop\n",
        _CANCEL.format(step="loop", ready=str(started)) +
        f"import os\nwhile not os.path.exists({str(stopped)!r}):\n    time.sleep(0.01)\n"
        "print(r.status, time.monotonic() - clicked < 1.0)",
    ])
    assert text_of(nb.cells[3]) == "cancelled True\n"
    assert stopped.read_text() == "True"


def test_a_thread_left_running_is_shown_until_it_ends(notebook, tmp_path):
    release, started = tmp_path / "release", tmp_path / "started"
    nb = notebook([
        "%load_ext chronum",
        "import os, time\nimport chronum\n"
        f"def stubborn():\n    open({str(started)!r}, 'w').close()\n"
        f"    while not os.path.exists({str(release)!r}):\n"
        "        time.sleep(0.02)\n    return 1\n",
        "%%chronum stubborn --background\nsteps:\n  - name: stubborn\n"
        "    executor: python\n    call: stubborn\n",
        _CANCEL.format(step="stubborn", ready=str(started)) +
        "print(r.status, r.still_running)\n"
        "print(list(chronum.steps(r.run_id)['reason']), list(chronum.steps(r.run_id)['status']))\n"
        "print(h.view.snap.states['stubborn'], 'still running in the background' in "
        "h.view.static_bundle()['text/html'])",
        # A later run of the same flow, while the thread lives, is warned.
        "%%chronum stubborn\nsteps:\n  - name: quick\n    run: echo quick\n",
        f"open({str(release)!r}, 'w').close()\n"
        "while r.still_running:\n    await asyncio.sleep(0.02)\nawait asyncio.sleep(0.1)\n"
        "print(r.status, list(chronum.steps(r.run_id)['reason']), h.view.snap.states['stubborn'])",
    ])
    lines = text_of(nb.cells[3]).splitlines()
    assert lines[0] == f"{STILL} ('stubborn',)"
    assert lines[1] == f"['{STILL}'] ['cancelled']"
    assert lines[2] == "background True"
    said = text_of(nb.cells[4])
    assert "step 'stubborn' of run" in said and "still running in the background" in said
    assert text_of(nb.cells[5]) == "cancelled ['run cancelled'] cancelled\n"
    # The final picture of the cancelled cell was sent again once the thread ended.
    assert "still running in the background" not in html_of(nb.cells[2])


def test_import_chronum_does_not_import_cloudpickle():
    code = "import sys, chronum; print('cloudpickle' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out == "False\n"


def test_the_isolate_flag_of_a_cell_isolates_its_call_steps_only():
    from chronum.notebook.cell import parse_flow, parse_options

    flow = parse_flow("steps:\n  - name: a\n    executor: python\n    call: f\n"
                      "  - name: b\n    run: echo b\n", parse_options("--isolate"))
    assert [dict(s.options) for s in flow.steps] == [{"isolate": "process"}, {}]
    plain = parse_flow("steps:\n  - name: a\n    executor: python\n    call: f\n",
                       parse_options(""))
    assert dict(plain.steps[0].options) == {}
