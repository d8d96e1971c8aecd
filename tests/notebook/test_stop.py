"""Stopping a run from the notebook: the view's Cancel button, and the kernel's Stop button."""

from __future__ import annotations

import asyncio
import os
import time

from .conftest import text_of


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_for(path, seconds: float = 30.0) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"{path} was never written")


def test_view_cancel_cancels_a_background_run_and_kills_its_process(notebook, tmp_path):
    pid_file = tmp_path / "pid"
    nb = notebook([
        "%load_ext chronum",
        f"%%chronum long --background\nsteps:\n  - name: nap\n    run: echo $$ > {pid_file};"
        " exec sleep 30\n",
        # the step has written its pid (a cancel before that would leave no pid to check)
        "import asyncio, os\nh = _\nwhile not h.view.snap.states.get('nap') == 'running' "
        f"or not os.path.getsize({str(pid_file)!r} if os.path.exists({str(pid_file)!r}) "
        "else os.devnull):\n"
        "    await asyncio.sleep(0.05)\nh.view.cancel()\nr = await h.wait()\n"
        "print(r.status, h.status)",
        "import chronum\nprint(chronum.history()['status'][0], chronum.steps()['status'][0])",
    ])
    assert text_of(nb.cells[2]) == "cancelled cancelled\n"
    assert text_of(nb.cells[3]) == "cancelled cancelled\n"
    assert "long: cancelled" in nb.cells[1].outputs[0].data["text/plain"]
    assert not _alive(_wait_for(pid_file))


def test_kernel_interrupt_cancels_the_blocking_run_and_leaves_it_resumable(client_for,
                                                                           tmp_path):
    pid_file = tmp_path / "pid"
    client = client_for([
        "%load_ext chronum",
        f"%%chronum stopme\nsteps:\n  - name: nap\n    run: echo $$ > {pid_file};"
        " exec sleep 30\n  - name: after\n    run: echo after\n    needs: [nap]\n",
        "import chronum\nprint(chronum.history()['status'][0], list(chronum.steps()['status']))",
    ])
    nb = client.nb

    async def drive() -> int:
        async with client.async_setup_kernel():
            await client.async_execute_cell(nb.cells[0], 0)
            cell = asyncio.create_task(client.async_execute_cell(nb.cells[1], 1))
            while not (pid_file.exists() and pid_file.read_text().strip()):
                await asyncio.sleep(0.05)
            pid = int(pid_file.read_text())
            await client.km.interrupt_kernel()
            await cell
            await client.async_execute_cell(nb.cells[2], 2)
            return pid

    pid = asyncio.run(drive())
    assert not _alive(pid)
    errors = [o.ename for o in nb.cells[1].outputs if o.output_type == "error"]
    assert errors == ["CancelledError"]
    assert "stopme: cancelled" in nb.cells[1].outputs[0].data["text/plain"]
    assert text_of(nb.cells[2]) == "cancelled ['cancelled', 'skipped']\n"
