"""Processes (nothing outlives a step, no zombies) and resources (memory, descriptors, a
database that cannot be written)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from ._common import Figure, Workspace, pid_alive, wait_for

__all__ = ["check_big_output", "check_descriptors_and_zombies", "check_process_trees",
           "check_read_only_database"]

# A step that starts a child and a grandchild that ignores SIGTERM, all recording their pids.
_TREE = """
            sh -c 'sh -c "trap \\"\\" TERM; echo \\$\\$ >> pids; while :; do sleep 0.1; done" &
                   echo $$ >> pids; wait' &
            echo $$ >> pids
            wait
"""


def _pids(ws: Workspace) -> list[int]:
    path = ws.root / "pids"
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _all_dead(pids: list[int]) -> Callable[[], bool]:
    return lambda: not any(map(pid_alive, pids))


def _started(ws: Workspace, n: int) -> Callable[[], bool]:
    return lambda: len(_pids(ws)) == n


def check_process_trees(work: Path, rounds: int) -> list[Figure]:
    """Timeouts and Ctrl-C over trees (child, grandchild ignoring SIGTERM): none survive."""
    started = 0
    for r in range(rounds):
        ws = Workspace(work / f"tree-{r}")
        ws.env["CHRONUM_KILL_GRACE"] = "0.3"
        ws.write("f.yaml", f"name: trees\nmaxParallel: 2\nsteps:\n"
                 f"  - name: timed\n    timeout: 0.5\n    run: |{_TREE}"
                 f"  - name: other\n    timeout: 0.5\n    run: |{_TREE}")
        ran = ws.json("run", "f.yaml")
        assert [s["exit_code"] for s in ran["steps"]] == [124, 124], ran
        pids = _pids(ws)
        assert len(pids) == 6, pids
        wait_for(_all_dead(pids), 10, "processes left after a timeout")
        started += len(pids)
        (ws.root / "pids").unlink()
        ws.write("g.yaml", f"name: cancel\nsteps:\n  - name: long\n    run: |{_TREE}")
        proc = ws.popen("run", "g.yaml")
        wait_for(_started(ws, 3), 30, "the tree started")
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        assert proc.returncode == 130
        pids = _pids(ws)
        wait_for(_all_dead(pids), 10, "processes left after Ctrl-C")
        started += len(pids)
    return [Figure("processes", "processes left behind by timeouts and Ctrl-C "
                   "(trees with a grandchild ignoring SIGTERM)", f"0 of {started}")]


_IN_PROCESS = r"""
import json, os, sys
import chronum
n, db = int(sys.argv[1]), sys.argv[2]

def flow(k):
    steps = "".join(f"  - name: s{i}\n    run: 'true'\n" for i in range(k))
    path = os.path.join(os.path.dirname(db), f"f{k}.yaml")
    with open(path, "w") as fh:
        fh.write(f"name: many\nmaxParallel: 4\nsteps:\n{steps}")
    return path

def zombies():
    me, found = str(os.getpid()), 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[-1].split()
        except OSError:
            continue
        found += stat[0] == "Z" and stat[1] == me
    return found

assert chronum.run(flow(5), db=db).status == "succeeded"   # warm up: imports, first open
before = len(os.listdir("/proc/self/fd"))
status = chronum.run(flow(n), db=db).status
after = len(os.listdir("/proc/self/fd"))
print(json.dumps({"status": status, "before": before, "after": after, "zombies": zombies()}))
"""


def check_descriptors_and_zombies(work: Path, n_steps: int) -> list[Figure]:
    """One process runs ``n_steps`` shell steps in-process: same descriptors, no zombies."""
    work.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, "-c", _IN_PROCESS, str(n_steps),
                          str(work / "fd.db")], capture_output=True, text=True, timeout=3600,
                         check=False)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.splitlines()[-1])
    assert got["status"] == "succeeded", got
    leaked = got["after"] - got["before"]
    assert leaked == 0, f"{leaked} file descriptors leaked over {n_steps} steps"
    assert got["zombies"] == 0, f"{got['zombies']} zombies after {n_steps} steps"
    return [
        Figure("resources", f"file descriptors leaked over {n_steps} steps (in-process run)",
               f"0 ({got['before']} before and after)"),
        Figure("processes", f"zombies left after {n_steps} steps", "0"),
    ]


def check_big_output(work: Path, megabytes: int, limit_mb: int) -> list[Figure]:
    """A step prints ``megabytes`` MB: the runner stays under ``limit_mb`` MB peak RSS, the log
    file on disk has every line, the database keeps only a bounded tail."""
    from chronum.store.logs import TAIL_BYTES

    ws = Workspace(work / "big-output")
    line = "a line of output that is about fifty bytes long...."  # 50 chars + newline
    n_lines = megabytes * 1_000_000 // (len(line) + 1)
    ws.write("f.yaml", f"name: chatty\nsteps:\n  - name: flood\n"
             f"    run: yes '{line}' | head -n {n_lines}\n")
    script = ("import resource, subprocess, sys;"
              "p = subprocess.run([sys.executable, '-m', 'chronum', 'run', 'f.yaml', '-q'],"
              " stdout=subprocess.DEVNULL);"
              "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", script], cwd=ws.root, env=ws.env,
                         capture_output=True, text=True, timeout=1800, check=False)
    code, peak_kb = (int(x) for x in out.stdout.split())
    assert code == 0, out.stderr
    peak_mb = peak_kb / 1024
    assert peak_mb < limit_mb, f"runner peaked at {peak_mb:.0f} MB"
    con = sqlite3.connect(ws.db)
    try:
        log_path, tail = con.execute("select log_path, log_tail from steps").fetchone()
    finally:
        con.close()
    with open(ws.db.parent / log_path, "rb") as fh:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    assert lines == n_lines, f"the log on disk has {lines} of {n_lines} lines"
    assert len(tail) <= TAIL_BYTES, f"log tail in the database is {len(tail)} characters"
    return [
        Figure("resources", f"peak RSS of `chronum run` while a step prints {megabytes} MB",
               f"{peak_mb:.0f} MB (limit {limit_mb} MB)"),
        Figure("resources", "log lines on disk after that step", f"{lines:,} of {n_lines:,}"),
        Figure("resources", "log tail kept in the database", f"{len(tail):,} characters "
               f"(cap {TAIL_BYTES:,})"),
    ]


def check_read_only_database(work: Path) -> list[Figure]:
    """A database the runner cannot write fails the run with a clear message, and the store
    is left as it was. As root, file modes do not stop writes, so the run drops to nobody."""
    root = Path(tempfile.mkdtemp(prefix="chronum-ro-"))  # traversable by nobody, unlike /tmp/x
    try:
        os.chmod(root, 0o755)
        ws = Workspace(root / "ro")
        ws.write("f.yaml", "name: ro\nsteps:\n  - name: a\n    run: echo hi\n")
        assert ws("run", "f.yaml", "-q").returncode == 0
        os.chmod(ws.root, 0o755)
        for path in (ws.db.parent, *ws.db.parent.rglob("*")):
            path.chmod(0o555 if path.is_dir() else 0o444)
        argv = ws.argv("run", "f.yaml", "-q")
        if os.geteuid() == 0:
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
        env = {**ws.env, "HOME": str(root)}
        proc = subprocess.run(argv, cwd=ws.root, env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert proc.returncode not in (0, 1) or "read" in proc.stderr.lower(), proc.stderr
        assert proc.returncode != 0, "a run on a read-only database succeeded"
        assert "Traceback" not in proc.stderr, proc.stderr
        message = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
        assert "read" in message.lower() and "only" in message.lower(), proc.stderr
        con = sqlite3.connect(f"file:{ws.db}?mode=ro", uri=True)
        try:
            runs = con.execute("select count(*) from runs").fetchone()[0]
            ok = con.execute("pragma integrity_check").fetchone()[0]
        finally:
            con.close()
        assert (runs, ok) == (1, "ok"), (runs, ok)
    finally:
        for path in root.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        shutil.rmtree(root, ignore_errors=True)
    return [Figure("resources", "read-only database: the run fails with a clear message, "
                   "store unchanged", f"exit {proc.returncode}: …{message[-70:]}")]
