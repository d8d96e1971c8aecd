"""Secrets on every path their output can take: printed across the 64 KiB line cut, and written
by in-process steps around ``sys.stdout`` (a thread, a logging handler holding the old stderr,
a child process, ``os.write``), in a terminal run and in a real notebook kernel.

Unmasked bytes are counted everywhere: every file under the workspace (the database, its WAL,
the log files, the run's own log, ``--events-jsonl``), the runner's terminal output, and every
message the kernel sent to the notebook. A recognisable half of the secret counts too.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from ._common import Figure, Workspace

__all__ = ["SECRET", "check_secret_paths"]

SECRET = "s3cr3t-Vq8-Rel-7d2e"
_PIECES = (SECRET, SECRET[:10], SECRET[10:])
_CUT = 64 * 1024

_MODULE = f"""
import logging, os, subprocess, sys, threading

_handler = logging.StreamHandler(sys.__stderr__)  # as if made before Chronum was imported
_log = logging.getLogger("leaky")
_log.addHandler(_handler)
_log.propagate = False


def thread():
    t = threading.Thread(target=lambda: print("thread", os.environ["REL_TOKEN"]))
    t.start()
    t.join()


def handler():
    _log.warning("handler %s", os.environ["REL_TOKEN"])


def child():
    subprocess.run([sys.executable, "-c",
                    "import os; print('child', os.environ['REL_TOKEN'])"], check=True)


def oswrite():
    os.write(1, ("fd1 " + os.environ["REL_TOKEN"] + "\\n").encode())
    os.write(2, ("fd2 " + os.environ["REL_TOKEN"] + "\\n").encode())


def cut():
    print("x" * {_CUT - 7} + os.environ["REL_TOKEN"] + "y" * 20)
"""

_FLOW = f"""
name: secret-paths
secrets: [REL_TOKEN]
maxParallel: 1
steps:
  - {{name: thread, executor: python, call: "leaky:thread"}}
  - {{name: handler, executor: python, call: "leaky:handler", needs: [thread]}}
  - {{name: child, executor: python, call: "leaky:child", needs: [handler]}}
  - {{name: oswrite, executor: python, call: "leaky:oswrite", needs: [child]}}
  - {{name: cut, executor: python, call: "leaky:cut", needs: [oswrite]}}
  - name: shellcut
    needs: [cut]
    run: printf '%0{_CUT - 5}d%s\\n' 0 "$REL_TOKEN"
"""

#: What each step's log must show, masked: the output was captured and given to its step.
_EXPECTED = {"thread": "thread ***", "handler": "handler ***", "child": "child ***",
             "oswrite": "fd1 ***", "cut": "x***y", "shellcut": "0***"}


def _unmasked(root: Path, *texts: str) -> tuple[int, list[str]]:
    """Occurrences of the secret (or a half of it) on disk under ``root`` and in ``texts``."""
    count, where = 0, []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            n = sum(data.count(p.encode()) for p in _PIECES)
            if n:
                count += n
                where.append(str(path.relative_to(root)))
    for i, text in enumerate(texts):
        n = sum(text.count(p) for p in _PIECES)
        if n:
            count += n
            where.append(f"output {i}")
    return count, where


def _workspace(work: Path, name: str) -> Workspace:
    ws = Workspace(work / name)
    ws.env["REL_TOKEN"] = SECRET
    ws.write("leaky.py", textwrap.dedent(_MODULE))
    ws.write("flow.yaml", textwrap.dedent(_FLOW))
    return ws


def _check_logs(ws: Workspace, where: str) -> None:
    for step, expected in _EXPECTED.items():
        log = ws("logs", "last", step).stdout
        assert expected in log, f"{where}: step {step!r} log lacks {expected!r}: {log[-200:]!r}"


def _terminal(work: Path, runs: int) -> int:
    unmasked = 0
    for i in range(runs):
        ws = _workspace(work, f"secrets-cli-{i}")
        ran = ws("run", "flow.yaml", "--events-jsonl", "events.jsonl", timeout=120)
        assert ran.returncode == 0, f"run {i}: {ran.stderr[-500:]}"
        _check_logs(ws, f"terminal run {i}")
        count, where = _unmasked(ws.root, ran.stdout, ran.stderr)
        assert count == 0, f"terminal run {i}: the secret appears in {where}"
        unmasked += count
    return unmasked


def _kernel(work: Path) -> int:
    """The same flow as a ``%%chronum`` cell in a real kernel; every iopub message counted."""
    from jupyter_client.manager import KernelManager  # heavy; only this check needs it

    ws = _workspace(work, "secrets-kernel")
    cell = f"%%chronum --db {ws.db}\n" + textwrap.dedent(_FLOW)
    km = KernelManager(kernel_name="python3")
    messages: list[str] = []
    # The kernel process's own fds 1/2 (a server's log) are files in the workspace: scanned too.
    with open(ws.root / "kernel-stdout.txt", "w") as out, \
            open(ws.root / "kernel-stderr.txt", "w") as err:
        km.start_kernel(cwd=str(ws.root), env=ws.env, stdout=out, stderr=err)
        kc = km.client()
        try:
            kc.start_channels()
            kc.wait_for_ready(timeout=60)
            for code in ("%load_ext chronum", cell):
                reply = kc.execute_interactive(
                    code, timeout=300,
                    output_hook=lambda m: messages.append(json.dumps(m["content"])))
                assert reply["content"]["status"] == "ok", reply["content"]
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    assert messages, "kernel: no message reached the notebook"
    _check_logs(ws, "kernel")
    count, where = _unmasked(ws.root, *messages)
    assert count == 0, f"kernel: the secret appears in {where}"
    return count


def check_secret_paths(work: Path, runs: int, kernel: bool = True) -> list[Figure]:
    """Run the flow ``runs`` times from a terminal (and once in a kernel); 0 unmasked bytes."""
    figures = [Figure(
        "secrets", f"unmasked secret bytes: 4 in-process paths + the 64 KiB cut (call and shell),"
        f" on disk (store, logs, events file) and in the terminal, {runs} runs",
        str(_terminal(work, runs)))]
    if kernel:
        figures.append(Figure(
            "secrets", "unmasked secret bytes: the same flow as a `%%chronum` cell in a real "
            "kernel, on disk and in every message to the notebook", str(_kernel(work))))
    return figures
