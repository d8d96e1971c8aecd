"""Nothing a run started outlives its kernel: a restart stops the steps and records why; after
a SIGKILL, ``%chronum resume last`` in a new kernel stops the orphans before it runs a step again.

Real kernels through nbclient and jupyter_client, real step processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

import chronum

from .conftest import text_of

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")


def _alive(pid: int) -> bool:
    """Alive and not a zombie (an orphan killed under a subreaper stays a zombie a while)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return False
    return raw[raw.rfind(b")") + 2:].split()[0] not in (b"Z", b"X")


def _wait_for_pid(path: Path, seconds: float = 60.0) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text().split()[0])
        time.sleep(0.05)
    raise AssertionError(f"{path} was never written")


def _wait_until_recorded(db: Path, seconds: float = 30.0) -> None:
    """Until the step's process group is on disk (a run killed in the instant between a
    spawn and its record leaves the orphan to the supervisor alone, after its grace)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(db)) as c:
            if c.execute("SELECT 1 FROM attempts WHERE pgid IS NOT NULL").fetchone():
                return
        time.sleep(0.05)
    raise AssertionError("the step's process group was never recorded")


def _napping_cell(name: str, pid_file: Path, extra: str = "") -> str:
    return (f"%%chronum {name} {extra}\nsteps:\n  - name: nap\n"
            f"    run: echo $$ > {pid_file}; exec sleep 45\n"
            "  - name: after\n    run: echo after\n    needs: [nap]\n")


def _restart_mid_run(client_for, tmp_path: Path, cell: str, pid_file: Path) -> tuple[object, int]:
    client = client_for(["%load_ext chronum", cell])
    nb = client.nb

    async def drive() -> int:
        async with client.async_setup_kernel():
            await client.async_execute_cell(nb.cells[0], 0)
            running = asyncio.create_task(client.async_execute_cell(nb.cells[1], 1))
            pid = await asyncio.to_thread(_wait_for_pid, pid_file)
            await asyncio.sleep(0.5)  # the live view is on screen
            await client.km.restart_kernel(now=False)
            with contextlib.suppress(Exception):  # the old kernel never replies
                await asyncio.wait_for(running, 5)
            return pid

    return nb, asyncio.run(drive())


@pytest.mark.parametrize("extra", ["", "--background"])
def test_restart_mid_run_stops_the_steps_and_records_why(client_for, tmp_path, extra):
    pid_file = tmp_path / "pid"
    nb, pid = _restart_mid_run(client_for, tmp_path, _napping_cell("restartme", pid_file, extra),
                               pid_file)
    assert not _alive(pid)
    db = tmp_path / ".chronum" / "chronum.db"
    assert chronum.history(db=db)["status"][0] == "cancelled"
    steps = chronum.steps(db=db)
    assert list(steps["status"]) == ["cancelled", "skipped"]
    assert list(steps["reason"]) == ["kernel shut down", "kernel shut down"]
    if extra:
        return  # no cell runs as the picture of a background run is replaced: nbclient drops it
    # What the notebook keeps is the final picture, never a widget whose kernel is gone.
    shown = [out for out in nb.cells[1].outputs if out.output_type == "display_data"]
    assert shown, nb.cells[1].outputs
    for out in shown:
        assert "application/vnd.jupyter.widget-view+json" not in out.data
    # the live view's first output became the picture, its other outputs (Cancel too) empty
    assert "restartme: cancelled" in shown[0].data["text/plain"]
    assert "chronum-static" in shown[0].data["text/html"]
    assert [out.data for out in shown[1:]] == [{"text/plain": ""}] * 5


def test_resume_after_sigkill_stops_the_orphan_before_the_step_runs_again(
        client_for, notebook, tmp_path, monkeypatch):
    pids, overlap = tmp_path / "pids", tmp_path / "overlap"
    # The step ignores SIGTERM, and the supervisor of the dead kernel waits this long before
    # SIGKILL: the orphan is still there when the new kernel resumes.
    monkeypatch.setenv("CHRONUM_KILL_GRACE", "60")
    step = (f"if [ -s {pids} ]; then for p in $(cat {pids}); do "
            f"if [ -e /proc/$p ] && ! grep -q ') Z' /proc/$p/stat; then echo $p >> {overlap}; "
            f"fi; done; echo second; else echo $$ > {pids}; trap '' TERM; "
            "while :; do sleep 0.1; done; fi")
    cell = f"%%chronum orphaned\nsteps:\n  - name: stubborn\n    run: \"{step}\"\n"
    client = client_for(["%load_ext chronum", cell])
    nb = client.nb
    db = tmp_path / ".chronum" / "chronum.db"

    async def drive() -> int:
        async with client.async_setup_kernel():
            await client.async_execute_cell(nb.cells[0], 0)
            running = asyncio.create_task(client.async_execute_cell(nb.cells[1], 1))
            pid = await asyncio.to_thread(_wait_for_pid, pids)
            await asyncio.to_thread(_wait_until_recorded, db)
            os.kill(client.km.provisioner.process.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(running, 10)
            return pid

    orphan = asyncio.run(drive())
    assert _alive(orphan)  # SIGKILL ran nothing in the kernel: the step is an orphan now
    assert chronum.history(db=db)["status"][0] == "interrupted"

    later = notebook(["%load_ext chronum",
                      "%env CHRONUM_KILL_GRACE=0.5",
                      "%chronum resume last",
                      "import chronum\nr = chronum.history()\nprint(list(r['status']))"])
    assert not _alive(orphan)
    assert not overlap.exists(), overlap.read_text()
    said = text_of(later.cells[2])
    assert "stopping what was left running" in said and str(orphan) in said
    assert text_of(later.cells[3]) == "['succeeded', 'interrupted']\n"
    logs = chronum.steps(db=db)
    assert list(logs["status"]) == ["succeeded"]
