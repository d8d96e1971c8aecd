"""Nothing outlives its run: processes that leave the step's group, every fatal signal to the
runner, a runner killed with SIGKILL, and descriptors on the error paths.

Every process these checks signal or wait for is one they started (their pids are written to a
file by the step itself).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ._common import Figure, Workspace, pid_alive, wait_for

__all__ = ["check_detached_trees", "check_error_path_descriptors", "check_fatal_signals",
           "check_runner_sigkill"]

# Three ways out of the step's process group, plus the leader: four pids in `pids`.
_TREES = """
            timeout 100 sh -c 'echo $$ >> pids; exec sleep 100' &
            bash -c 'set -m; sh -c "echo \\$\\$ >> pids; exec sleep 100" & sleep 0.2' &
            setsid sh -c 'sh -c "echo \\$\\$ >> pids; exec sleep 100" &' &
            echo $$ >> pids
            while [ "$(wc -l < pids)" -lt 4 ]; do sleep 0.01; done
"""
_N = 4


def _tools() -> None:
    missing = [t for t in ("timeout", "bash", "setsid") if shutil.which(t) is None]
    if missing:
        raise RuntimeError(f"needs {', '.join(missing)}")


def _pids(ws: Workspace) -> list[int]:
    path = ws.root / "pids"
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _all_started(ws: Workspace) -> Callable[[], bool]:
    return lambda: len(_pids(ws)) == _N


def _all_dead(pids: list[int]) -> Callable[[], bool]:
    return lambda: not any(map(pid_alive, pids))


def _settle(ws: Workspace, what: str, timeout: float = 5.0) -> int:
    """Wait until every recorded pid is dead; kill survivors (ours) and fail if there were any."""
    pids = _pids(ws)
    try:
        wait_for(lambda: not any(map(pid_alive, pids)), timeout, what)
    except AssertionError:
        left = [p for p in pids if pid_alive(p)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        raise AssertionError(f"{what}: {len(left)} of {len(pids)} processes left") from None
    (ws.root / "pids").unlink()
    return len(pids)


def _flow(ws: Workspace, name: str, tail: str, extra: str = "") -> None:
    ws.write(name, f"name: trees\nsteps:\n  - name: tree\n{extra}    run: |{_TREES}"
                   f"            {tail}\n")


def check_detached_trees(work: Path, rounds: int) -> list[Figure]:
    """``timeout``, ``set -m`` and setsid trees: none survive the step's end, its timeout, or
    Ctrl-C to the runner."""
    _tools()
    started = 0
    for r in range(rounds):
        ws = Workspace(work / f"detached-{r}")
        ws.env["CHRONUM_KILL_GRACE"] = "0.5"
        _flow(ws, "end.yaml", "echo done")
        assert ws("run", "end.yaml", "-q").returncode == 0
        started += _settle(ws, "after the step ended")
        _flow(ws, "timeout.yaml", "sleep 100", "    timeout: 2\n")
        ran = ws.json("run", "timeout.yaml")
        assert [s["exit_code"] for s in ran["steps"]] == [124], ran
        started += _settle(ws, "after the step timed out")
        _flow(ws, "cancel.yaml", "sleep 100")
        proc = ws.popen("run", "cancel.yaml")
        wait_for(_all_started(ws), 30, "the trees started")
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        assert proc.returncode == 130, proc.returncode
        started += _settle(ws, "after Ctrl-C")
    return [Figure("processes", "processes left by `timeout`, `set -m` and setsid trees when "
                   "the step ends, times out or is cancelled", f"0 of {started}")]


_SCRIPT = "import sys, chronum\nchronum.run(sys.argv[1], db=sys.argv[2])\n"


def check_fatal_signals(work: Path, names: list[str]) -> list[Figure]:
    """Each fatal signal to ``chronum run``, and SIGTERM to a script calling ``chronum.run()``:
    the steps' trees are stopped and the run is recorded cancelled."""
    _tools()
    ws = Workspace(work / "signals")
    ws.env["CHRONUM_KILL_GRACE"] = "0.5"
    _flow(ws, "f.yaml", "sleep 100")
    ws.write("script.py", _SCRIPT)
    started, cases = 0, 0
    for name in [*names, "script SIGTERM"]:
        sig = signal.Signals[name.split()[-1]]
        if name.startswith("script"):
            argv = [sys.executable, "script.py", "f.yaml", str(ws.db)]
            expected = -sig  # the script ends as the signal would have ended it
        else:
            argv = ws.argv("run", "f.yaml", "-q")
            expected = 128 + sig
        proc = subprocess.Popen(argv, cwd=ws.root, env=ws.env, text=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: len(_pids(ws)) == _N, 30, f"{name}: the trees started")
        finally:
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == expected, (name, proc.returncode, err)
        started += _settle(ws, f"after {name}")
        status = ws.json("show", "last")["status"]
        assert status == "cancelled", (name, status)
        cases += 1
    return [Figure("processes", f"processes left after a fatal signal to the runner "
                   f"({', '.join(names)}; SIGTERM to a chronum.run() script), each run "
                   f"recorded cancelled", f"0 of {started} ({cases} signals)")]


def check_runner_sigkill(work: Path, rounds: int) -> list[Figure]:
    """kill -9 of the runner: its supervisor stops every step tree; how long that takes."""
    _tools()
    ws = Workspace(work / "sigkill")
    ws.env["CHRONUM_KILL_GRACE"] = "0.5"
    _flow(ws, "f.yaml", "sleep 100")
    took: list[float] = []
    started = 0
    for _ in range(rounds):
        proc = ws.popen("run", "f.yaml", "-q")
        wait_for(lambda: len(_pids(ws)) == _N, 30, "the trees started")
        pids = _pids(ws)
        proc.kill()
        killed = time.monotonic()
        proc.communicate(timeout=30)
        wait_for(_all_dead(pids), 10, "step processes outlived the runner's SIGKILL")
        took.append(time.monotonic() - killed)
        started += _settle(ws, "after SIGKILL")
    return [Figure("processes", f"after kill -9 of the runner, its step trees (`timeout`, "
                   f"`set -m`, setsid) are gone within (worst of {rounds})",
                   f"{max(took) * 1000:.0f} ms, 0 of {started} left")]


_FAILING = r"""
import json, os, sys
import chronum
calls, folder = int(sys.argv[1]), sys.argv[2]
flow = os.path.join(folder, "f.yaml")
with open(flow, "w") as fh:
    fh.write("name: f\nsteps:\n  - name: a\n    run: 'true'\n")
db = os.path.join(folder, "runs.db")
bad = [os.path.join(folder, "missing", "events.jsonl"), folder]
def fail(path):
    try:
        chronum.run(flow, db=db, events_jsonl=path)
    except chronum.ChronumError:
        return
    raise AssertionError("the run did not fail")
for path in bad:
    fail(path)  # warm up: imports, the first open
before = len(os.listdir("/proc/self/fd"))
for i in range(calls):
    fail(bad[i % 2])
print(json.dumps({"before": before, "after": len(os.listdir("/proc/self/fd"))}))
"""


def check_error_path_descriptors(work: Path, calls: int) -> list[Figure]:
    """``calls`` runs that fail before they start (an events file in a missing folder, or a
    folder): the process holds as many descriptors after as before."""
    work.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, "-c", _FAILING, str(calls), str(work)],
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.splitlines()[-1])
    leaked = got["after"] - got["before"]
    assert leaked == 0, f"{leaked} descriptors leaked over {calls} failing runs"
    return [Figure("resources", f"descriptors leaked over {calls} runs failing before they "
                   f"start (bad events file)", "0")]
