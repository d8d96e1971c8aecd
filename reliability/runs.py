"""Crashes (kill -9 of ``chronum run``) and concurrency (many processes on one database)."""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from pathlib import Path

from ._common import Figure, Workspace, integrity, wait_for

__all__ = ["check_concurrency", "check_crashes", "check_fan_in_crashes"]


def _chain(n_steps: int) -> str:
    """A chain whose steps each append their name to ``done.txt`` as their only effect."""
    lines = ["name: chain", "steps:"]
    for i in range(n_steps):
        lines += [f"  - name: s{i}", f"    run: echo s{i} >> done.txt"]
        if i:
            lines.append(f"    needs: [s{i - 1}]")
    return "\n".join(lines) + "\n"


def assert_consistent_after_kill(ws: Workspace, label: str) -> None:
    """What a kill -9 must leave: an intact store, the run ``interrupted``, and no step
    recorded ``succeeded`` whose side effect (its line in the file) is missing."""
    assert integrity(ws.db) == "ok", f"{label}: integrity_check failed"
    shown = ws.json("show", "last")
    assert shown["status"] == "interrupted", f"{label}: run is {shown['status']}"
    done = set(_done(ws))
    for step in shown["steps"]:
        assert step["status"] != "succeeded" or step["step"] in done, (
            f"{label}: {step['step']} recorded succeeded without its side effect")


def _fan_in(groups: int, width: int = 8) -> tuple[str, dict[str, list[str]]]:
    """``groups`` fans of ``width`` steps, each fan closed by a join the next fan needs, run 4
    at a time; every step appends its name to ``done.txt``. Also the needs of every step."""
    lines = ["name: fans", "maxParallel: 4", "steps:"]
    needs: dict[str, list[str]] = {}
    before: list[str] = []
    for g in range(groups):
        fan = [f"g{g}s{i}" for i in range(width)]
        for name in fan:
            needs[name] = before
        needs[f"join{g}"] = fan
        before = [f"join{g}"]
    for name, wanted in needs.items():
        lines += [f"  - name: {name}", f"    run: echo {name} >> done.txt"]
        if wanted:
            lines.append(f"    needs: [{', '.join(wanted)}]")
    return "\n".join(lines) + "\n", needs


def _done(ws: Workspace) -> list[str]:
    path = ws.root / "done.txt"
    return path.read_text().split() if path.exists() else []


def _kill_after(ws: Workspace, target: int) -> None:
    """Start the run and kill -9 it once ``target`` steps have taken effect."""
    proc = ws.popen("run", "f.yaml", "-q")
    wait_for(lambda: len(_done(ws)) >= target or proc.poll() is not None, 120,
             f"{target} steps done")
    proc.kill()
    _, err = proc.communicate()
    assert proc.returncode == -9, f"the run ended by itself before the kill: {err}"


def killed_and_resumed(ws: Workspace, label: str, target: int, max_parallel: int,
                       needs: dict[str, list[str]]) -> int:
    """kill -9 once ``target`` steps took effect, check the store, resume; then every step's
    effect is there, and only steps the store shows running at the kill (at most
    ``max_parallel``) took effect twice, none of them with a dependent that had started.
    Returns how many steps ran twice."""
    _kill_after(ws, target)
    assert_consistent_after_kill(ws, label)
    running = {s["step"] for s in ws.json("show", "last")["steps"] if s["status"] == "running"}
    assert len(running) <= max_parallel, f"{label}: {len(running)} steps running: {running}"
    before = set(_done(ws))
    resumed = ws("resume", "last", "-q")
    assert resumed.returncode == 0, f"{label}: resume failed: {resumed.stderr}"
    effects = Counter(_done(ws))
    assert set(effects) == set(needs), f"{label}: effects missing after resume"
    twice = {step for step, n in effects.items() if n > 1}
    assert all(effects[step] == 2 for step in twice), f"{label}: a step ran 3 times: {effects}"
    assert twice <= running, f"{label}: ran twice but not running at the kill: {twice - running}"
    for step in twice:
        acted = [d for d, wanted in needs.items() if step in wanted and d in before]
        assert not acted, f"{label}: {step} ran again although {acted} had started after it"
    return len(twice)


def check_crashes(work: Path, kills: int, n_steps: int, seed: int = 6) -> list[Figure]:
    """kill -9 of ``chronum run`` once each after a random number of steps (1..n-1) has
    taken effect; then the store must be intact, the run ``interrupted``, every recorded
    success backed by its effect, ``chronum resume last`` must finish the flow, and at most
    one step (the chain's ``maxParallel``), the one running at the kill, ran twice."""
    rng = random.Random(seed)
    flow = _chain(n_steps)
    needs = {f"s{i}": [f"s{i - 1}"] if i else [] for i in range(n_steps)}
    per_kill = []
    for k in range(kills):
        ws = Workspace(work / f"crash-{k}")
        ws.write("f.yaml", flow)
        per_kill.append(killed_and_resumed(ws, f"kill {k}", rng.randint(1, n_steps - 1), 1,
                                           needs))
    return [
        Figure("crashes", f"kill -9 of `chronum run` at random moments ({n_steps}-step flow)",
               f"{kills} kills"),
        Figure("crashes", "PRAGMA integrity_check ok after a kill", f"{kills}/{kills}"),
        Figure("crashes", "killed run shown `interrupted`", f"{kills}/{kills}"),
        Figure("crashes", "steps recorded succeeded without their side effect", "0"),
        Figure("crashes", "`chronum resume last` completed with every side effect",
               f"{kills}/{kills}"),
        Figure("crashes", "steps run twice per kill (limit: maxParallel, 1; only the step "
               "running at the kill)", f"at most {max(per_kill)}; {sum(per_kill)} over {kills}"
               " kills"),
    ]


def check_fan_in_crashes(work: Path, kills: int, groups: int, seed: int = 8) -> list[Figure]:
    """kill -9 of ``chronum run`` of a ``maxParallel: 4`` flow of fans and joins, after a random
    number of steps took effect; after resume every step's effect is there once, except steps
    the store shows running at the kill (at most 4), and none of those had a started
    dependent."""
    rng = random.Random(seed)
    flow, needs = _fan_in(groups)
    per_kill = []
    for k in range(kills):
        ws = Workspace(work / f"fan-{k}")
        ws.write("f.yaml", flow)
        per_kill.append(killed_and_resumed(ws, f"fan kill {k}", rng.randint(1, len(needs) - 1),
                                           4, needs))
    return [
        Figure("crashes", f"kill -9 of a `maxParallel: 4` fan-in flow ({len(needs)} steps, "
               "each appends to a file): effects once after resume, except steps running at "
               "the kill", f"{kills}/{kills}"),
        Figure("crashes", "steps run twice per kill (limit: maxParallel, 4)",
               f"at most {max(per_kill)}; {sum(per_kill)} over {kills} kills"),
    ]


def check_concurrency(work: Path, n_procs: int, n_steps: int) -> list[Figure]:
    """``n_procs`` ``chronum run`` processes at once on one database, ``n_steps`` steps each."""
    ws = Workspace(work / "concurrency")
    steps = "\n".join(f"  - name: s{i}\n    run: 'true'" for i in range(n_steps))
    ws.write("f.yaml", f"name: busy\nmaxParallel: 4\nsteps:\n{steps}\n")
    procs = [ws.popen("run", "f.yaml", "-q") for _ in range(n_procs)]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    locked = sum("locked" in err for err in errors)
    assert locked == 0, f"'database is locked' in {locked} processes"
    for p, err in zip(procs, errors, strict=True):
        assert p.returncode == 0, err
    con = sqlite3.connect(ws.db)
    try:
        runs = con.execute("select run_id, status from runs").fetchall()
        per_run = con.execute("select run_id, count(*), sum(status = 'succeeded') from steps "
                              "group by run_id").fetchall()
        attempts = con.execute("select count(*), count(distinct run_id || ':' || step) "
                               "from attempts").fetchone()
        kinds = Counter(dict(con.execute("select kind, count(*) from events group by kind")))
        seqs = con.execute("select count(*), count(distinct run_id || ':' || seq) "
                           "from events").fetchone()
    finally:
        con.close()
    total = n_procs * n_steps
    assert len(runs) == n_procs and all(s == "succeeded" for _, s in runs), runs
    assert sorted((n, ok) for _, n, ok in per_run) == [(n_steps, n_steps)] * n_procs, per_run
    assert attempts == (total, total), f"attempt rows lost or duplicated: {attempts}"
    assert kinds["run.started"] == kinds["run.finished"] == n_procs, kinds
    assert kinds["step.started"] == kinds["step.succeeded"] == total, kinds
    assert seqs[0] == seqs[1], "duplicated event numbers"
    return [
        Figure("concurrency", f"{n_procs} processes x {n_steps} steps on one database",
               f"{n_procs}/{n_procs} runs complete"),
        Figure("concurrency", "'database is locked' errors", "0"),
        Figure("concurrency", "step / attempt rows lost or duplicated",
               f"0 of {total} / 0 of {total}"),
        Figure("concurrency", "events per run complete (started, every step, finished)",
               f"{n_procs}/{n_procs}"),
    ]
