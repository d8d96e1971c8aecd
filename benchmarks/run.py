"""Chronum's benchmarks (``make bench``): whole ``chronum run`` processes beside doit and a floor.

    python benchmarks/run.py [--quick] [--repeat N] [--json PATH] [--only W1,W3,...]
                             [--doit-backend dbm|json|sqlite3]

Each workload W0-W4 (``workloads.py``) is one DAG, written both as a Chronum flow and as a
``dodo.py`` for doit 0.37, the fastest peer: one task per step, ``task_dep`` for ``needs``, a
Python function returning ``None`` for each no-op step (a ``true`` command for W3's), run with
``doit -n N -P thread`` where N is the flow's ``maxParallel``. doit is installed by this script
into its own virtual environment in the scratch folder (``python -m venv`` and that venv's pip),
once per invocation; nothing goes into ``.venv`` or the repository.

The runs are interleaved, chronum, doit, floor, chronum, doit, floor, ... (after one warm-up
run of each, not counted), so a machine that gets busier slows all three alike; every number is
a median of whole-process wall times (7 by default). The floor (``floor.py``) is one process
that only imports asyncio and sqlite3 and runs the same DAG of sync no-ops, each handed to one
of 2 worker threads, 2 at a time: the least any runtime built the way issue #2 asks pays before
it parses or records anything. W3's floor is a bare asyncio loop spawning the same processes
(``asyncio_true.py``). Every run is checked: chronum's database must record a succeeded run
with every step succeeded, doit's report must list every task as run, a floor must exit 0.

The budgets (checked here, never as timed tests): W1, W2, W4 at most 1.0x doit; W0 at most
1.15x doit; W3 at most 1.2x the bare asyncio loop; ``import chronum`` at most 40 ms over
``python -c pass``; a 10,000-step flow at most 150 MB peak RSS; ``chronum.steps()`` over 100,000
recorded steps at most 1 s; no pandas/IPython/graphviz/dask after ``import chronum`` or a run.

This is a report, not a test: the exit code is 0 even when a budget is missed, 1 only when a
workload could not be run at all (a command that fails, doit that cannot be installed).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import workloads as wl

HERE = Path(__file__).resolve().parent
PY = sys.executable
CHRONUM = str(Path(sys.executable).parent / "chronum")
HEAVY = ("pandas", "IPython", "graphviz", "dask")
MB = 1_000_000
DOIT_VERSION = "0.37.0"
REPEAT = 7

#: The environment of every measured process; ``main`` sets it (see ``child_env``).
ENV: dict[str, str] = dict(os.environ)


def child_env(scratch: Path) -> dict[str, str]:
    """This environment with bytecode caching on, the caches kept in the scratch folder.

    A user's installed chronum (and doit) runs from ``.pyc`` files; a sandbox that sets
    ``PYTHONDONTWRITEBYTECODE`` would otherwise make every measured process compile its
    imports from source (about 80 ms of W0 here). ``PYTHONPYCACHEPREFIX`` keeps the caches
    out of the repository, and ``CHRONUM_CACHE_DIR`` the flow cache out of the user's home; the
    warm-up run of each workload fills both.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    env["CHRONUM_CACHE_DIR"] = str(scratch / "chronum-cache")
    return env


class BenchError(Exception):
    """A workload could not be measured (the command failed, or did not do all its work)."""


# -- rows, medians and verdicts -------------------------------------------------------------


@dataclass
class Row:
    """One line of the report.

    ``samples`` holds each contestant's timings by name: ``chronum``, and beside it ``doit``,
    ``floor`` (``asyncio`` for W3) or ``python`` (``python -c pass``). A ratio budget divides
    chronum's median by the median of ``against``; an absolute one judges ``value`` (chronum's
    median unless the benchmark sets another figure, such as the import's added milliseconds).
    """

    name: str
    what: str
    unit: str  # "s", "ms", "MB" or "-"
    budget: float | None = None
    against: str | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)
    value: float | None = None
    passed: bool | None = None
    steps: int = 0
    note: str = ""
    error: str = ""

    def median(self, who: str = "chronum") -> float | None:
        runs = self.samples.get(who)
        return statistics.median(runs) if runs else None

    def ratio(self, who: str) -> float | None:
        """Chronum's median over ``who``'s."""
        ours, theirs = self.median(), self.median(who)
        if ours is None or not theirs:
            return None
        return ours / theirs

    def judged(self) -> float | None:
        """The figure the budget is checked against."""
        if self.against is not None:
            return self.ratio(self.against)
        return self.value if self.value is not None else self.median()

    def judge(self) -> None:
        value = self.judged()
        if value is not None and self.budget is not None:
            self.passed = value <= self.budget

    @property
    def verdict(self) -> str:
        if self.error:
            return "ERROR"
        return {True: "ok", False: "over", None: "-"}[self.passed]

    def floor_over_doit(self) -> float | None:
        floor, doit = self.median("floor"), self.median("doit")
        return None if floor is None or not doit else floor / doit

    @property
    def below_floor(self) -> bool:
        """Even the floor would miss the budget: the floor over doit exceeds the ratio allowed."""
        ratio = self.floor_over_doit()
        return (self.against == "doit" and self.budget is not None and ratio is not None
                and ratio > self.budget)

    def report(self) -> dict[str, object]:
        names = [n for n in self.samples if n != "chronum"]
        return {**asdict(self), "medians": {n: self.median(n) for n in self.samples},
                "ratios": {n: self.ratio(n) for n in names}, "judged": self.judged(),
                "verdict": self.verdict, "budget_below_floor": self.below_floor}


Runner = Callable[[int], float]


def interleave(runners: Sequence[tuple[str, Runner]], repeat: int) -> dict[str, list[float]]:
    """Run 0 of every runner as a warm-up (not kept), then ``repeat`` rounds of one run each.

    The order within a round is the order given (chronum, doit, floor), so whatever slows the
    machine during the benchmark falls on every contestant of a round, not on one of them.
    """
    for _, run in runners:
        run(0)
    samples: dict[str, list[float]] = {name: [] for name, _ in runners}
    for i in range(1, repeat + 1):
        for name, run in runners:
            samples[name].append(run(i))
    return samples


# -- running processes ----------------------------------------------------------------------


def _timed(cmd: Sequence[str], cwd: Path, stdout: Path | None = None) -> float:
    """Wall time of one process; its standard output goes to ``stdout`` or is dropped."""
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(stdout, "wb")) if stdout is not None else None
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, stdout=out or subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=ENV, check=False)
        took = time.perf_counter() - start
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise BenchError(f"`{' '.join(cmd[:3])} ...` exited {done.returncode}: "
                         + " | ".join(tail))
    return took


def _db(tmp: Path, name: str, i: int) -> Path:
    """The database of run ``i`` of a workload, in its own folder (step logs go beside it).

    Workloads reuse one database (``i`` is 0 for every run): a project's
    ``.chronum/chronum.db`` exists after its first run, so that is what a user's run costs.
    The ``W0 new`` row passes each run its own ``i``, a database created by that run."""
    folder = tmp / "db" / f"{name}-{i}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "chronum.db"


def _check_recorded(db: Path, n_steps: int) -> None:
    """The latest run really happened: recorded succeeded, with every step succeeded."""
    with sqlite3.connect(db) as conn:
        run = conn.execute("SELECT run_id, status FROM runs ORDER BY started_at DESC "
                           "LIMIT 1").fetchone()
        done = conn.execute("SELECT COUNT(*) FROM steps WHERE run_id = ? AND status = "
                            "'succeeded'", (run[0] if run else "",)).fetchone()[0]
    if run is None or run[1] != "succeeded" or done != n_steps:
        raise BenchError(f"{db.name}: latest run {run}, {done} of {n_steps} steps succeeded")


def check_doit_report(text: str, workload: wl.Workload) -> None:
    """doit's console report lists every task it ran as ``.  name``: all steps, each once."""
    ran = [line[3:] for line in text.splitlines() if line.startswith(".  ")]
    expected = {s.name for s in workload.steps}
    if len(ran) != len(expected) or set(ran) != expected:
        missing = sorted(expected - set(ran))[:3]
        raise BenchError(f"doit ran {len(ran)} tasks of {len(expected)} in {workload.name}"
                         + (f" (missing {', '.join(missing)}, ...)" if missing else ""))


class Doit:
    """doit in a virtual environment of its own inside the scratch folder, made on first use.

    One venv serves the whole invocation (creating it and installing doit takes seconds) and
    is deleted with the scratch folder. A failed install is remembered, so every doit row
    reports it instead of trying again.
    """

    def __init__(self, scratch: Path, backend: str | None) -> None:
        self.venv = scratch / "doit-venv"
        self.backend = backend
        self._script: Path | None = None
        self._error = ""

    @property
    def script(self) -> Path:
        if self._error:
            raise BenchError(self._error)
        if self._script is None:
            try:
                self._script = self._install()
            except BenchError as exc:
                self._error = str(exc)
                raise
        return self._script

    def _install(self) -> Path:
        print(f"doit: installing doit=={DOIT_VERSION} into {self.venv} ...", file=sys.stderr,
              flush=True)
        python = self.venv / "bin" / "python"
        for step in ([PY, "-m", "venv", str(self.venv)],
                     [str(python), "-m", "pip", "install", "--quiet",
                      "--disable-pip-version-check", f"doit=={DOIT_VERSION}"]):
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise BenchError(f"installing doit failed at `{' '.join(step[1:4])} ...`: "
                                 f"{(done.stderr or done.stdout).strip()[-300:]}")
        script = self.venv / "bin" / "doit"
        version = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                                 check=False).stdout.split()
        if not version or version[0] != DOIT_VERSION:
            raise BenchError(f"the venv's doit reports version {version[:1]}, "
                             f"expected {DOIT_VERSION}")
        return script

    def command(self, dodo: Path, db: Path, parallel: int) -> list[str]:
        cmd = [str(self.script), "run", "-f", str(dodo), "--db-file", str(db),
               "-n", str(parallel), "-P", "thread"]
        if self.backend is not None:
            cmd += ["--backend", self.backend]
        return cmd

    def describe(self) -> str:
        if self.backend is not None:
            return f"--backend {self.backend}"
        # doit's default backend is the dbm module, which takes the first of these it can load.
        found = next((name for name, module in (("gnu", "_gdbm"), ("ndbm", "_dbm"))
                      if importlib.util.find_spec(module)), "dumb")
        return f"its default dependency file, dbm (here dbm.{found})"


# -- the benchmarks -------------------------------------------------------------------------


def _check_floor(floor: list[str], workload: wl.Workload, cwd: Path) -> None:
    """``floor.py`` runs the workload's DAG: the same number of steps and of dependency edges."""
    done = subprocess.run([*floor, "--shape"], cwd=cwd, capture_output=True, text=True, env=ENV,
                          check=False)
    theirs = tuple(int(x) for x in done.stdout.split()) if done.returncode == 0 else None
    if theirs != workload.counts:
        raise BenchError(f"floor.py's DAG {theirs} differs from {workload.name}'s "
                         f"{workload.counts} (steps, edges): {done.stderr.strip()[-300:]}")


@dataclass
class FlowBench:
    """One workload: chronum against doit and a floor, each run checked."""

    tmp: Path
    doit: Doit
    workload: wl.Workload
    floor: list[str]  # the floor's command (W3: the bare asyncio loop)
    floor_name: str = "floor"
    new_db: bool = False  # every run creates its database (chronum's and doit's)

    def __call__(self, row: Row, repeat: int) -> None:
        key = row.name.lower().replace(" ", "-")
        flow = wl.write_flow(self.tmp, key, self.workload)
        dodo = wl.write_dodo(self.tmp / "doit", key, self.workload)
        n = len(self.workload.steps)
        if self.floor_name == "floor":
            _check_floor(self.floor, self.workload, self.tmp)

        def chronum(i: int) -> float:
            db = _db(self.tmp, key, i if self.new_db else 0)
            took = _timed([CHRONUM, "run", str(flow), "-q", "--db", str(db)], self.tmp)
            _check_recorded(db, n)
            return took

        def doit(i: int) -> float:
            folder = _db(self.tmp, f"doit-{key}", i if self.new_db else 0).parent
            report = folder / "report.txt"
            cmd = self.doit.command(dodo, folder / "doit.db", self.workload.max_parallel)
            took = _timed(cmd, dodo.parent, stdout=report)
            check_doit_report(report.read_text(encoding="utf-8"), self.workload)
            return took

        def floor(i: int) -> float:
            return _timed(self.floor, self.tmp)

        row.samples = interleave([("chronum", chronum), ("doit", doit),
                                  (self.floor_name, floor)], repeat)
        row.steps = n


def floor_notes(rows: list[Row]) -> None:
    """How far above its floor each flow is: in all, and per step beyond W0's fixed part."""

    def above(r: Row) -> float | None:
        ours, floor = r.median(), r.median("floor")
        return None if ours is None or floor is None else ours - floor

    fixed = next((above(r) for r in rows if r.name == "W0"), None)
    for r in rows:
        gap, floor = above(r), r.median("floor")
        if gap is None or floor is None:
            continue
        note = (f"floor {floor:.3f} s ({r.steps:,} no-op{'s' if r.steps > 1 else ''} in "
                f"worker threads, 2 at a time, after importing asyncio and sqlite3); chronum "
                f"{1000 * gap:+.0f} ms above it")
        if fixed is not None and r.steps > 1:
            note += (f", {1e6 * (gap - fixed) / (r.steps - 1):+.0f} us per step beyond W0's "
                     f"{1000 * fixed:+.0f} ms")
        r.note = note


def bench_import(row: Row, tmp: Path, repeat: int) -> None:
    def timer(cmd: list[str]) -> Runner:
        return lambda _: 1000 * _timed(cmd, tmp)

    row.samples = interleave([("chronum", timer([PY, "-c", "import chronum"])),
                              ("python", timer([PY, "-c", "pass"]))], repeat)
    chronum, python = row.median(), row.median("python")
    assert chronum is not None and python is not None
    row.value = chronum - python
    least = min(row.samples["chronum"]) - min(row.samples["python"])
    row.note = (f"import chronum {chronum:.1f} ms whole process, python -c pass {python:.1f} "
                f"ms; fastest runs differ by {least:.1f} ms (a negative median means noise "
                f"exceeds the cost)")


_HEAVY_PROBE = """
import json, sys
after_import = []
import chronum
after_import = [m for m in HEAVY if m in sys.modules]
from chronum.cli import main
code = main(["run", FLOW, "-q", "--db", DB])
after_run = [m for m in HEAVY if m in sys.modules]
with open(OUT, "w") as fh:
    json.dump({"import": after_import, "run": after_run, "code": code}, fh)
"""


def check_heavy_imports(row: Row, tmp: Path, flow: Path) -> None:
    """After ``import chronum``, and after a whole ``chronum run`` of W0 in the same process."""
    out = tmp / "heavy.json"
    names = {"HEAVY": HEAVY, "FLOW": str(flow), "DB": str(_db(tmp, "heavy", 0)), "OUT": str(out)}
    probe = "".join(f"{k} = {v!r}\n" for k, v in names.items()) + _HEAVY_PROBE
    done = subprocess.run([PY, "-c", probe], cwd=tmp, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, env=ENV, check=False)
    if done.returncode != 0 or not out.exists():
        raise BenchError(f"the import probe failed: {done.stderr.strip()[-300:]}")
    report = json.loads(out.read_text(encoding="utf-8"))
    if report["code"] != 0:
        raise BenchError(f"chronum run of W0 exited {report['code']} in the import probe")
    row.passed = not report["import"] and not report["run"]
    row.note = (f"after `import chronum`: {', '.join(report['import']) or 'none'}; "
                f"after a whole `chronum run` of W0: {', '.join(report['run']) or 'none'}")


def _peak(cmd: list[str], tmp: Path) -> int:
    out = subprocess.run([PY, str(HERE / "peak_rss.py"), *cmd], cwd=tmp, capture_output=True,
                         text=True, env=ENV, check=True)
    report = json.loads(out.stdout)
    if report["returncode"] != 0:
        raise BenchError(f"`{' '.join(cmd[:3])} ...` exited {report['returncode']}")
    return int(report["peak_rss_bytes"])


def bench_memory(row: Row, tmp: Path, n: int) -> None:
    flow = wl.write_flow(tmp, "memory", wl.independent(n))
    warm_up = wl.write_flow(tmp, "memory-warm-up", wl.one_step())
    _timed([CHRONUM, "run", str(warm_up), "-q", "--db", str(_db(tmp, "warm-up", 0))], tmp)
    db = _db(tmp, row.name, 0)
    start = time.perf_counter()
    peak = _peak([CHRONUM, "run", str(flow), "-q", "--db", str(db)], tmp) / MB
    took = time.perf_counter() - start
    _check_recorded(db, n)
    python = _peak([PY, "-c", "pass"], tmp) / MB
    row.samples = {"chronum": [peak], "python": [python]}
    row.steps = n
    row.note = f"the {n:,}-step run took {took:.2f} s; python -c pass peaks at {python:.1f} MB"


def bench_steps(row: Row, tmp: Path, n: int, repeat: int) -> None:
    db = _db(tmp, row.name, 0)
    start = time.perf_counter()
    built = subprocess.run([PY, str(HERE / "recorded.py"), "build", str(db), str(n)], cwd=tmp,
                           capture_output=True, text=True, env=ENV, check=False)
    if built.returncode != 0:
        raise BenchError(f"building the database failed: {built.stderr.strip()[-400:]}")
    build_s = time.perf_counter() - start
    run_id = json.loads(built.stdout)["run_id"]
    cold: list[float] = []
    warm: list[float] = []
    for _ in range(repeat + 1):  # the first is the warm-up (page cache, .pyc files)
        out = subprocess.run([PY, str(HERE / "recorded.py"), "time", str(db), run_id],
                             cwd=tmp, capture_output=True, text=True, env=ENV, check=False)
        if out.returncode != 0:
            raise BenchError(f"chronum.steps() failed: {out.stderr.strip()[-400:]}")
        report = json.loads(out.stdout)
        if not report["ok"] or report["rows"] != n:
            raise BenchError(f"chronum.steps() returned {report['rows']} rows, expected {n}")
        cold.append(report["seconds"])
        warm.append(report["warm_seconds"])
    row.samples = {"chronum": cold[1:], "second call": warm[1:]}
    row.steps = n
    row.note = (f"first call in a fresh process; a second call takes "
                f"{statistics.median(warm[1:]):.3f} s; building the db took {build_s:.1f} s")


# -- the plan and the report ----------------------------------------------------------------


Bench = Callable[[Row, int], None]  # (row, repeat)


def plan(sizes: wl.Sizes, tmp: Path, doit: Doit, import_repeat: int) -> list[tuple[Row, Bench]]:
    wl.write_noop_module(tmp)
    floor = [PY, str(HERE / "floor.py")]
    n3 = sizes.w3_shell
    w0 = wl.one_step()

    def flow(workload: wl.Workload, floor_cmd: list[str], floor_name: str = "floor",
             new_db: bool = False) -> Bench:
        return FlowBench(tmp, doit, workload, floor_cmd, floor_name, new_db)

    w0_flow = wl.write_flow(tmp, "w0-heavy", w0)
    return [
        (Row("W0", "1 step", "s", budget=1.15, against="doit"), flow(w0, [*floor, "W0"])),
        # No budget: what the very first run of a project costs, creating its database.
        (Row("W0 new", "1 step, first run: new database", "s"),
         flow(w0, [*floor, "W0"], new_db=True)),
        (Row("W1", f"{sizes.w1_fan:,} no-ops + 1 join", "s", budget=1.0, against="doit"),
         flow(wl.fan_in(sizes.w1_fan), [*floor, "W1", str(sizes.w1_fan)])),
        (Row("W2", f"{sizes.w2_chain}-step chain", "s", budget=1.0, against="doit"),
         flow(wl.chain(sizes.w2_chain), [*floor, "W2", str(sizes.w2_chain)])),
        (Row("W3", f"{n3} shell `true`", "s", budget=1.2, against="asyncio"),
         flow(wl.shell_true(n3), [PY, str(HERE / "asyncio_true.py"), str(n3)], "asyncio")),
        (Row("W4", f"{sizes.w4_layers}x{sizes.w4_width} layers", "s", budget=1.0,
             against="doit"),
         flow(wl.layers(sizes.w4_layers, sizes.w4_width),
              [*floor, "W4", str(sizes.w4_layers), str(sizes.w4_width)])),
        (Row("import", "import chronum, added", "ms", budget=40.0),
         lambda row, _: bench_import(row, tmp, import_repeat)),
        (Row("heavy", "no pandas/IPython/graphviz/dask", "-"),
         lambda row, _: check_heavy_imports(row, tmp, w0_flow)),
        (Row("memory", f"{sizes.memory_steps:,}-step flow, peak RSS", "MB", budget=150.0),
         lambda row, _: bench_memory(row, tmp, sizes.memory_steps)),
        (Row("steps()", f"chronum.steps(), {sizes.recorded_steps:,} steps", "s", budget=1.0),
         lambda row, repeat: bench_steps(row, tmp, sizes.recorded_steps, repeat)),
    ]


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f} s"
    return f"{value:.1f} {unit}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _budget(row: Row) -> str:
    if row.name == "heavy":
        return "none loaded"
    if row.budget is None:
        return "-"
    if row.against is not None:
        return f"<= {row.budget:g}x {row.against}"
    return f"<= {row.budget:g} {row.unit}"


def table(rows: list[Row]) -> list[str]:
    head = ("workload", "what", "chronum", "doit", "x doit", "floor", "x floor", "budget",
            "verdict")
    lines = [head]
    for r in rows:
        floor_name = "asyncio" if "asyncio" in r.samples else "floor"
        ours = (f"{r.value:+.1f} {r.unit}" if r.name == "import" and r.value is not None
                else _fmt(r.median(), r.unit))
        lines.append((r.name, r.what, ours, _fmt(r.median("doit"), r.unit), _x(r.ratio("doit")),
                      _fmt(r.median(floor_name), r.unit), _x(r.ratio(floor_name)), _budget(r),
                      r.verdict))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for i, line in enumerate(lines):
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def print_report(rows: list[Row], quick: bool, repeat: int, doit: Doit) -> None:
    print("\n".join(table(rows)))
    print()
    for r in rows:
        if r.note or r.error:
            print(f"{r.name}: {r.error or r.note}")
    print()
    print(f"medians of {repeat} interleaved runs (chronum, doit, floor, chronum, ...) after one "
          f"warm-up each. doit {DOIT_VERSION}: `doit run -n {wl.PARALLEL} -P thread`, "
          f"{doit.describe()}; floor: floor.py, the DAG as worker-thread no-ops after importing "
          f"asyncio and sqlite3 (W3: asyncio_true.py, the same processes from a bare loop)")
    if quick:
        print("--quick: reduced sizes and repetitions; verdicts are a smoke check only.")
    missed = [r.name for r in rows if r.passed is False]
    print(f"over budget: {', '.join(missed)}" if missed else "every measured budget met")
    unreachable = [f"{r.name} (floor {_x(r.floor_over_doit())} doit)"
                   for r in rows if r.below_floor]
    if unreachable:
        print(f"budgets below the floor on this machine: {', '.join(unreachable)}")
    broken = [r.name for r in rows if r.error]
    if broken:
        print(f"could not measure: {', '.join(broken)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 repetitions and smaller workloads, for a smoke check")
    parser.add_argument("--repeat", type=int,
                        help=f"measured runs per contestant (default {REPEAT}; import 15)")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    parser.add_argument("--only", metavar="NAMES",
                        help="comma-separated: W0,W0 new,W1,W2,W3,W4,import,heavy,memory,steps")
    parser.add_argument("--doit-backend", choices=("dbm", "json", "sqlite3"),
                        help="doit's dependency-file backend (default: doit's own default)")
    parser.add_argument("--keep-env", action="store_true",
                        help="run every process in this environment unchanged (by default "
                             "bytecode caching is turned on, into the scratch folder)")
    args = parser.parse_args(argv)
    global ENV
    repeat = args.repeat or (3 if args.quick else REPEAT)
    import_repeat = args.repeat or (3 if args.quick else 15)
    sizes = wl.SIZES["quick" if args.quick else "full"]
    only = {n.strip().lower().strip("()") for n in args.only.split(",")} if args.only else None
    if not Path(CHRONUM).exists():
        print(f"no chronum entry point at {CHRONUM}; run `make setup` first", file=sys.stderr)
        return 1
    rows: list[Row] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="chronum-bench-") as scratch:
        if not args.keep_env:
            ENV = child_env(Path(scratch))
        doit = Doit(Path(scratch), args.doit_backend)
        for row, bench in plan(sizes, Path(scratch), doit, import_repeat):
            if only is not None and row.name.lower().strip("()") not in only:
                continue
            print(f"{row.name}: {row.what} ...", file=sys.stderr, flush=True)
            try:
                bench(row, repeat)
            except (BenchError, subprocess.CalledProcessError, OSError, sqlite3.Error) as exc:
                row.error = str(exc)
            if row.name != "heavy" and not row.error:
                row.judge()
            rows.append(row)
    load = (load_before, os.getloadavg()[0])
    floor_notes(rows)
    print_report(rows, args.quick, repeat, doit)
    print(f"1-minute load average {load[0]:.2f} before, {load[1]:.2f} after, on "
          f"{os.cpu_count()} CPUs (a busy machine inflates every number)")
    if args.json:
        report = {
            "quick": args.quick,
            "repeat": repeat,
            "python": platform.python_version(),
            "machine": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": load,
            "bytecode_cache": not args.keep_env,
            "doit": {"version": DOIT_VERSION, "options": f"run -n {wl.PARALLEL} -P thread",
                     "backend": doit.describe()},
            "results": [r.report() for r in rows],
        }
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
