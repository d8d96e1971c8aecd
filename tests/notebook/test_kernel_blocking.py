"""The blocking API in a cell: ``flow.run()`` blocks the cell with the live view, the cells Run
All queued behind it run after it, and the kernel's Stop button cancels it cleanly.

A real kernel through jupyter_client: every cell's execute request is sent at once, as Run All
does, so the later ones wait in the kernel's queue while ``flow.run()`` blocks.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

import chronum

jupyter_client = pytest.importorskip("jupyter_client")

from chronum.notebook.view import CANCEL_MIME  # noqa: E402

from .conftest import KERNEL  # noqa: E402

FLOW = ("import chronum\nflow = chronum.Flow('blocking')\n"
        "flow.shell('a', 'sleep 0.4; echo a')\n"
        "flow.shell('b', 'sleep 0.4; echo b', needs=['a'])\n"
        "@flow.step(needs=['b'])\ndef c():\n    return 42\n")


async def _run_all(kernel_path: Path, cwd: Path, cells: list[str], *,
                   interrupt_when: Path | None = None) -> list[dict[str, Any]]:
    """Send every cell at once; per cell: reply status, streams, display kinds, and what
    each of its displays shows at the end (by display id)."""
    km = jupyter_client.AsyncKernelManager(kernel_name=KERNEL)
    await km.start_kernel(cwd=str(cwd), env=dict(os.environ))
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        ids = [kc.execute(code) for code in cells]
        seen: dict[str, dict[str, Any]] = {
            i: {"status": None, "text": "", "kinds": [], "outputs": {}} for i in ids}
        by_display: dict[str, str] = {}
        interrupted = interrupt_when is None
        deadline = time.monotonic() + 90
        while any(s["status"] is None for s in seen.values()):
            assert time.monotonic() < deadline, seen
            if not interrupted and interrupt_when is not None and interrupt_when.exists():
                await km.interrupt_kernel()
                interrupted = True
            try:
                msg = await kc.get_iopub_msg(timeout=0.1)
            except Exception:
                msg = None
            if msg is not None:
                parent = msg["parent_header"].get("msg_id")
                kind, content = msg["msg_type"], msg["content"]
                display_id = content.get("transient", {}).get("display_id")
                if kind == "display_data" and display_id and parent in seen:
                    by_display[display_id] = parent
                target = by_display.get(display_id, parent) if display_id else parent
                if target in seen:
                    if kind == "stream":
                        seen[target]["text"] += content["text"]
                    elif kind in ("display_data", "update_display_data", "error"):
                        data = content.get("data", {})
                        seen[target]["kinds"].append(
                            kind if kind == "error" else
                            "widget" if "application/vnd.jupyter.widget-view+json" in data
                            else "cancel" if CANCEL_MIME in data else "html")
                        seen[target]["outputs"][display_id] = data
                        if CANCEL_MIME in data:
                            seen[target]["cancel"] = data[CANCEL_MIME]
            while True:
                try:
                    reply = await kc.get_shell_msg(timeout=0.01)
                except Exception:
                    break
                pid = reply["parent_header"].get("msg_id")
                if pid in seen:
                    seen[pid]["status"] = reply["content"]["status"]
        await asyncio.sleep(0.3)  # late iopub messages of the last cell
        while True:
            try:
                msg = await kc.get_iopub_msg(timeout=0.2)
            except Exception:
                break
            parent = msg["parent_header"].get("msg_id")
            if msg["msg_type"] == "stream" and parent in seen:
                seen[parent]["text"] += msg["content"]["text"]
        return [seen[i] for i in ids]
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)


def test_flow_run_in_a_cell_blocks_with_the_live_view_and_queued_cells_run_after(
        kernel_path, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_path))
    monkeypatch.delenv("CHRONUM_DB", raising=False)
    cells = ["%load_ext chronum",
             FLOW + "r = flow.run()\nprint(r.status, r.outputs['c'])",
             "print('queued 1', r.status)",
             "print('queued 2', r.status)",
             "print('queued 3', len(chronum.history()))"]
    out = asyncio.run(_run_all(kernel_path, tmp_path, cells))
    assert [c["status"] for c in out] == ["ok"] * 5
    assert out[1]["text"] == "succeeded 42\n"
    # The live view (plain HTML, its Cancel shown inactive: the kernel is blocked), then the
    # final picture in the header's place and the other outputs empty; never a widget.
    kinds = out[1]["kinds"]
    assert kinds[:2] == ["html", "cancel"] and "widget" not in kinds
    assert kinds.count("cancel") == 1 and "update_display_data" not in kinds
    finals = list(out[1]["outputs"].values())
    assert len(finals) == 6 and finals[1:] == [{"text/plain": ""}] * 5
    assert '<span class="chronum-state">succeeded</span>' in finals[0]["text/html"]
    assert "chronum-static" in finals[0]["text/html"]
    assert out[1]["cancel"]["disabled"] is True and "Stop button" in out[1]["cancel"]["tooltip"]
    assert [c["text"] for c in out[2:]] == ["queued 1 succeeded\n", "queued 2 succeeded\n",
                                            "queued 3 1\n"]


def test_the_stop_button_cancels_a_blocking_run(kernel_path, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_path))
    monkeypatch.delenv("CHRONUM_DB", raising=False)
    pid_file = tmp_path / "pid"
    cells = ["%load_ext chronum",
             "import chronum\nflow = chronum.Flow('stopped')\n"
             f"flow.shell('nap', 'echo $$ > {pid_file}; exec sleep 30')\n"
             "flow.shell('after', 'echo after', needs=['nap'])\nr = flow.run()"]
    out = asyncio.run(_run_all(kernel_path, tmp_path, cells, interrupt_when=pid_file))
    assert out[1]["status"] == "error"  # KeyboardInterrupt, after the run was stopped
    db = tmp_path / ".chronum" / "chronum.db"
    assert chronum.history(db=db)["status"][0] == "cancelled"
    assert list(chronum.steps(db=db)["status"]) == ["cancelled", "skipped"]
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists() or \
        Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] in "ZX"
