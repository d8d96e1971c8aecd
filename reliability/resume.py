"""Resume: exactly the rest (no step recorded succeeded runs again over crash/resume cycles),
exactly once (several ``chronum resume`` of one run at once), and no overlap with what the
killed runner left running."""

from __future__ import annotations

import random
import sqlite3
import time
from collections import Counter
from pathlib import Path

from ._common import Figure, Workspace, pid_alive, wait_for

__all__ = ["check_concurrent_resumes", "check_orphan_overlap", "check_resume_exactness"]

_STEPS_MODULE = """
def _make(name):
    def step():
        with open("done.txt", "a") as f:
            f.write(name + "\\n")
    step.__name__ = name
    return step


for _i in range({n}):
    globals()[f"s{{_i}}"] = _make(f"s{{_i}}")
"""


def _call_chain(n_steps: int) -> str:
    """A chain of python ``call:`` steps whose functions take no parameters; each appends its
    name to ``done.txt`` as its only effect."""
    lines = ["name: calls", "steps:"]
    for i in range(n_steps):
        lines += [f"  - name: s{i}", "    executor: python", f"    call: steps:s{i}"]
        if i:
            lines.append(f"    needs: [s{i - 1}]")
    return "\n".join(lines) + "\n"


def _effects(ws: Workspace) -> Counter[str]:
    path = ws.root / "done.txt"
    return Counter(path.read_text().split()) if path.exists() else Counter()


def _kept(ws: Workspace) -> set[str]:
    """Steps of the newest run recorded succeeded or cached."""
    con = sqlite3.connect(ws.db)
    try:
        rows = con.execute(
            "SELECT step FROM steps WHERE run_id = (SELECT run_id FROM runs ORDER BY "
            "started_at DESC, rowid DESC LIMIT 1) AND status IN ('succeeded', 'cached')"
        ).fetchall()
    finally:
        con.close()
    return {r[0] for r in rows}


def check_resume_exactness(work: Path, cycles: int, n_steps: int, seed: int = 11
                           ) -> list[Figure]:
    """``chronum run`` of a ``call:`` chain killed with -9 after a random number of effects,
    then up to ``cycles - 1`` times ``chronum resume last`` in a new process, killed the same
    way, then a last resume to the end. A step recorded succeeded (or cached) in a killed run
    must never take effect again (steps that took effect without being recorded may: that is
    at-least-once)."""
    rng = random.Random(seed)
    ws = Workspace(work / "resume-exact")
    ws.write("f.yaml", _call_chain(n_steps))
    ws.write("steps.py", _STEPS_MODULE.format(n=n_steps))
    args: tuple[str, ...] = ("run", "f.yaml", "-q")
    kept: set[str] = set()
    base: Counter[str] = Counter()
    again = kills = 0
    for _ in range(cycles):
        remaining = n_steps - len(base)
        if remaining <= 1:
            break
        target = sum(base.values()) + rng.randint(1, remaining - 1)
        proc = ws.popen(*args)
        wait_for(lambda: sum(_effects(ws).values()) >= target or proc.poll() is not None,  # noqa: B023
                 300, "effects before the kill")
        proc.kill()
        _, err = proc.communicate()
        assert proc.returncode in (-9, 0), err
        kills += proc.returncode == -9
        now = _effects(ws)
        again += sum(now[s] - base[s] for s in kept)
        kept, base = _kept(ws), now
        args = ("resume", "last", "-q")
    finished = ws("resume", "last", "-q")
    assert finished.returncode == 0, finished.stderr
    now = _effects(ws)
    again += sum(now[s] - base[s] for s in kept)
    assert set(now) == {f"s{i}" for i in range(n_steps)}, "effects missing after resume"
    assert again == 0, f"{again} steps recorded succeeded took effect again"
    return [
        Figure("resume", f"kill -9 / `chronum resume last` cycles of a {n_steps}-step `call:` "
               "chain (functions without parameters), each resume a new process",
               f"{kills} kills"),
        Figure("resume", "steps recorded succeeded or cached that ran again", "0"),
    ]


def check_concurrent_resumes(work: Path, n_procs: int, n_steps: int = 20) -> list[Figure]:
    """A run fails halfway; ``n_procs`` ``chronum resume`` of it start at once: the remaining
    steps take effect once, one resume runs them, the others are refused naming it."""
    ws = Workspace(work / f"resume-{n_procs}-at-once")
    half = n_steps // 2
    lines = ["name: halves", "steps:"]
    for i in range(n_steps):
        gate = "test -e fixed && " if i == half else ""
        lines += [f"  - name: s{i}", f"    run: {gate}echo s{i} >> done.txt"]
        if i:
            lines.append(f"    needs: [s{i - 1}]")
    ws.write("f.yaml", "\n".join(lines) + "\n")
    assert ws("run", "f.yaml", "-q").returncode == 1
    failed = ws.json("show", "last")["run_id"]  # by id: `last` would soon name a resume
    (ws.root / "fixed").touch()
    procs = [ws.popen("resume", failed, "-q") for _ in range(n_procs)]
    ends = [(p.wait(300), p.communicate()[1]) for p in procs]
    codes = sorted(code for code, _ in ends)
    assert codes == [0] + [2] * (n_procs - 1), ends
    assert all("resumed by run" in err for code, err in ends if code), ends
    effects = _effects(ws)
    twice = sum(n - 1 for n in effects.values())
    assert twice == 0 and len(effects) == n_steps, effects
    return [Figure("resume", f"{n_procs} `chronum resume` of one run at once: steps run "
                   "twice / resumes that ran", f"0 / 1 of {n_procs}")]


# The previous copy counts as alive unless it is gone or a zombie (state Z in /proc: dead,
# waiting for a parent that may never reap it, such as a container's PID 1).
_SLEEPER = (
    "s=$(test -f {name}.pid && cut -d' ' -f3 /proc/$(cat {name}.pid)/stat 2>/dev/null || true); "
    "if [ -n \"$s\" ] && [ \"$s\" != Z ]; then echo {name} >> overlaps.txt; fi; "
    "echo $$ > {name}.pid; echo {name} >> started.txt; test -e fast || sleep 60"
)


def check_orphan_overlap(work: Path, kills: int, width: int = 8) -> list[Figure]:
    """``width`` parallel steps sleep; the runner is killed with -9 while they do, and
    ``chronum resume last`` runs them again. Each step first checks whether the previous
    copy of itself is still alive: none may be, and none may be left afterwards."""
    overlaps = left = 0
    for k in range(kills):
        ws = Workspace(work / f"orphans-{k}")
        lines = ["name: sleepers", f"maxParallel: {width}", "steps:"]
        for i in range(width):
            # detach: allow, so the supervisor that stops a SIGKILLed runner's steps leaves
            # them running (by design): what resume itself must stop before a step reruns
            lines += [f"  - name: p{i}", "    detach: allow", "    run: |",
                      f"      {_SLEEPER.format(name=f'p{i}')}"]
        ws.write("f.yaml", "\n".join(lines) + "\n")
        proc = ws.popen("run", "f.yaml", "-q")
        started = ws.root / "started.txt"
        wait_for(lambda: started.exists() and len(started.read_text().split()) >= width,  # noqa: B023
                 60, "every step started")
        time.sleep(0.1)  # the last spawns committed
        proc.kill()
        proc.communicate()
        old = [int((ws.root / f"p{i}.pid").read_text()) for i in range(width)]
        assert all(pid_alive(pid) for pid in old), "the killed runner's steps should live on"
        (ws.root / "fast").touch()
        resumed = ws("resume", "last", "-q")
        assert resumed.returncode == 0, resumed.stderr
        assert "left running before run" in resumed.stderr, resumed.stderr
        found = ws.root / "overlaps.txt"
        overlaps += len(found.read_text().split()) if found.exists() else 0
        left += sum(pid_alive(pid) for pid in old)
    assert overlaps == 0, f"{overlaps} steps ran beside their killed copy"
    assert left == 0, f"{left} processes of the killed runs left"
    return [
        Figure("resume", f"kill -9 of `chronum run` with {width} detached steps running, "
               "then `chronum resume last`", f"{kills} kills"),
        Figure("resume", "steps that started beside their killed copy / killed copies left",
               f"0 of {kills * width} / 0"),
    ]
