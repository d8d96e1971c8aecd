"""kill -9 of a Jupyter kernel while a ``%%chronum`` cell runs: the same promises as a killed
``chronum run``. Needs jupyter_client and the venv's kernel spec (``make setup``)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
from collections import Counter
from pathlib import Path

from ._common import Figure, Workspace, wait_for
from .runs import _chain, _done, assert_consistent_after_kill

__all__ = ["check_kernel_kill"]


def _kill_kernel_mid_cell(ws: Workspace, cell: str, target: int) -> None:
    from jupyter_client.manager import KernelManager  # heavy; only this check needs it

    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(ws.root), env=ws.env, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
    kc = km.client()
    try:
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        reply = kc.execute_interactive("%load_ext chronum", timeout=60, output_hook=_quiet)
        assert reply["content"]["status"] == "ok", reply["content"]
        kc.execute(cell)
        wait_for(lambda: len(_done(ws)) >= target, 120, f"{target} steps done in the kernel")
        pid = km.provisioner.pid if km.provisioner is not None else None  # type: ignore[attr-defined]
        assert pid is not None, "no kernel process"
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not km.is_alive(), 30, "the kernel died")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _resume_in_new_kernel(ws: Workspace) -> str:
    """``%chronum resume last`` in a fresh kernel, as a user would after the crash; the run's
    status as the kernel sees it."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(ws.root), env=ws.env, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
    kc = km.client()
    seen: list[str] = []

    def collect(msg: dict[str, object]) -> None:
        content = msg.get("content")
        if msg.get("msg_type") == "stream" and isinstance(content, dict):
            seen.append(str(content.get("text", "")))

    try:
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        # `%chronum resume` must be alone in its cell (it becomes a top-level await)
        for code in ("%load_ext chronum", f"%chronum resume last --db {ws.db}",
                     "print(_.status)"):
            reply = kc.execute_interactive(code, timeout=300, output_hook=collect)
            assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return "".join(seen).strip().splitlines()[-1] if seen else ""


def _quiet(msg: object) -> None:
    """Output of the set-up cell is not wanted."""


def check_kernel_kill(work: Path, kills: int, n_steps: int, seed: int = 7) -> list[Figure]:
    """Kill the kernel after a random number of a cell flow's steps took effect; the store must
    be intact, the run ``interrupted``, every recorded success backed by its effect, a
    ``%chronum resume last`` in a new kernel must finish it, and at most the one step running
    at the kill (the chain's ``maxParallel``) ran twice."""
    rng = random.Random(seed)
    flow_text = _chain(n_steps)
    everything = {f"s{i}" for i in range(n_steps)}
    per_kill = []
    for k in range(kills):
        ws = Workspace(work / f"kernel-{k}")
        _kill_kernel_mid_cell(ws, f"%%chronum --db {ws.db}\n{flow_text}",
                              rng.randint(1, n_steps - 1))
        assert_consistent_after_kill(ws, f"kernel kill {k}")
        running = {s["step"] for s in ws.json("show", "last")["steps"]
                   if s["status"] == "running"}
        assert len(running) <= 1, f"kernel kill {k}: {len(running)} steps running: {running}"
        status = _resume_in_new_kernel(ws)
        assert status == "succeeded", f"kernel kill {k}: resume in a new kernel {status!r}"
        effects = Counter(_done(ws))
        assert set(effects) == everything, f"kernel kill {k}: effects missing after resume"
        twice = {step for step, n in effects.items() if n > 1}
        assert twice <= running and all(effects[s] == 2 for s in twice), (
            f"kernel kill {k}: ran again: {twice}, running at the kill: {running}")
        per_kill.append(len(twice))
    return [
        Figure("crashes", f"kill -9 of the kernel during a `%%chronum` cell ({n_steps} steps):"
               " integrity ok, `interrupted`, no success without effect, resumed in a new kernel",
               f"{kills}/{kills}"),
        Figure("crashes", "steps run twice per kernel kill (limit: maxParallel, 1)",
               f"at most {max(per_kill)}; {sum(per_kill)} over {kills} kills"),
    ]
