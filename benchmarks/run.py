"""Chronum's benchmarks (``make bench``): whole ``chronum run`` processes against budgets.

    python benchmarks/run.py [--quick] [--repeat N] [--json PATH] [--only W1,W3,...]

Every number is a median of whole-process wall times, each taken beside a baseline measured in
the same invocation (alternating with it, so a busy machine slows both): a bare ``python -c pass``
for the in-process workloads, a bare asyncio loop spawning the same processes for W3. The
workloads and budgets are issue #2's "Performance" section. Flows, databases and logs live in a
temporary folder that is deleted afterwards; nothing is written into the repository.

W0, W1, W2 and W4 are also timed beside their floor (``floor.py``, alternating in the same way,
same repeat count): one process that only imports asyncio and sqlite3 and runs the same DAG of
sync no-ops, each handed to one of 2 worker threads (a queue put, a ``call_soon_threadsafe``
back), 2 at a time. That is the
least any runtime pays that meets the issue's design (asyncio engine, ``call:`` functions in a
worker thread, states in SQLite) before it parses or records anything. The table shows the floor
and chronum's multiple of it next to the budget verdict, which is judged exactly as before; the
summary names the budgets that lie below the floor measured on this machine.

This is a report, not a test: the exit code is 0 even when a budget is missed (1 only when a
workload could not be run at all, such as a ``chronum run`` that fails).
"""

from __future__ import annotations

import argparse
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

#: The environment of every measured process; ``main`` sets it (see ``child_env``).
ENV: dict[str, str] = dict(os.environ)


def child_env(scratch: Path) -> dict[str, str]:
    """This environment with bytecode caching on, the caches kept in the scratch folder.

    A user's installed chronum runs from ``.pyc`` files; a sandbox that sets
    ``PYTHONDONTWRITEBYTECODE`` would otherwise make every measured process compile chronum and
    its imports from source (about 80 ms of W0 here). ``PYTHONPYCACHEPREFIX`` keeps the caches
    out of the repository, and ``CHRONUM_CACHE_DIR`` the flow cache out of the user's home; the
    warm-up run of each workload fills both.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    env["CHRONUM_CACHE_DIR"] = str(scratch / "chronum-cache")
    return env


class BenchError(Exception):
    """A workload could not be measured (the command failed, or recorded the wrong thing)."""


@dataclass
class Row:
    name: str
    what: str
    unit: str  # "s", "ms" or "MB"
    median: float | None = None
    baseline: float | None = None
    floor: float | None = None
    budget: float | None = None
    budget_is_ratio: bool = False
    passed: bool | None = None
    samples: list[float] = field(default_factory=list)
    baseline_samples: list[float] = field(default_factory=list)
    floor_samples: list[float] = field(default_factory=list)
    steps: int = 0
    note: str = ""
    error: str = ""

    @property
    def ratio(self) -> float | None:
        if self.median is None or not self.baseline:
            return None
        return self.median / self.baseline

    @property
    def floor_ratio(self) -> float | None:
        if self.median is None or not self.floor:
            return None
        return self.median / self.floor

    @property
    def below_floor(self) -> bool:
        """The budget is an absolute time that even the floor misses (not a verdict on chronum)."""
        return (self.budget is not None and not self.budget_is_ratio and self.floor is not None
                and self.floor > self.budget)

    def judge(self) -> None:
        value = self.ratio if self.budget_is_ratio else self.median
        self.passed = None if value is None or self.budget is None else value <= self.budget


# -- running processes ----------------------------------------------------------------------


def _timed(cmd: Sequence[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          env=ENV, check=False)
    took = time.perf_counter() - start
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise BenchError(f"`{' '.join(cmd[:3])} ...` exited {done.returncode}: "
                         + " | ".join(tail))
    return took


def _paired(command: Callable[[int], list[str]], baseline: list[str], repeat: int,
            cwd: Path, check: Callable[[int], None] | None = None,
            floor: list[str] | None = None) -> tuple[list[float], list[float], list[float]]:
    """One warm-up of each, then ``repeat`` alternating (baseline, [floor,] command) timings.

    Returns the command's, the baseline's and the floor's samples (empty without a floor).
    """
    _timed(baseline, cwd)
    if floor is not None:
        _timed(floor, cwd)
    _timed(command(0), cwd)
    if check is not None:
        check(0)
    ours: list[float] = []
    theirs: list[float] = []
    floors: list[float] = []
    for i in range(1, repeat + 1):
        theirs.append(_timed(baseline, cwd))
        if floor is not None:
            floors.append(_timed(floor, cwd))
        ours.append(_timed(command(i), cwd))
    return ours, theirs, floors


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


# -- the benchmarks -------------------------------------------------------------------------


def _check_floor(floor: list[str], flow: Path, cwd: Path) -> None:
    """``floor.py`` runs the flow's DAG: the same number of steps and of dependency edges."""
    done = subprocess.run([*floor, "--shape"], cwd=cwd, capture_output=True, text=True, env=ENV,
                          check=False)
    theirs = tuple(int(x) for x in done.stdout.split()) if done.returncode == 0 else None
    ours = wl.shape(flow.read_text(encoding="utf-8"))
    if theirs != ours:
        raise BenchError(f"floor.py's DAG {theirs} differs from {flow.name}'s {ours} "
                         f"(steps, edges): {done.stderr.strip()[-300:]}")


def bench_flow(row: Row, tmp: Path, flow: Path, n_steps: int, repeat: int,
               baseline: list[str], floor: list[str] | None = None,
               new_db: bool = False) -> None:
    def db(i: int) -> Path:
        return _db(tmp, row.name, i if new_db else 0)

    def command(i: int) -> list[str]:
        return [CHRONUM, "run", str(flow), "-q", "--db", str(db(i))]

    if floor is not None:
        _check_floor(floor, flow, tmp)
    ours, theirs, floors = _paired(command, baseline, repeat, tmp,
                                   lambda i: _check_recorded(db(i), n_steps),
                                   floor)
    row.samples, row.baseline_samples, row.floor_samples = ours, theirs, floors
    row.median, row.baseline = statistics.median(ours), statistics.median(theirs)
    row.steps = n_steps
    if floors:
        row.floor = statistics.median(floors)


def floor_notes(rows: list[Row]) -> None:
    """How far above its floor each flow is: in all, and per step beyond W0's fixed part."""
    fixed = next((r.median - r.floor for r in rows if r.name == "W0" and r.floor is not None
                  and r.median is not None), None)
    for r in rows:
        if r.floor is None or r.median is None:
            continue
        above = r.median - r.floor
        note = (f"floor {r.floor:.3f} s ({r.steps:,} no-op{'s' if r.steps > 1 else ''} in "
                f"worker threads, 2 at a time, after importing asyncio and sqlite3); chronum "
                f"{1000 * above:+.0f} ms above it")
        if fixed is not None and r.steps > 1:
            note += (f", {1e6 * (above - fixed) / (r.steps - 1):+.0f} us per step beyond W0's "
                     f"{1000 * fixed:+.0f} ms")
        r.note = note


def bench_import(row: Row, tmp: Path, repeat: int) -> None:
    ours, theirs, _ = _paired(lambda _: [PY, "-c", "import chronum"], [PY, "-c", "pass"],
                              repeat, tmp)
    row.samples = [1000 * t for t in ours]
    row.baseline_samples = [1000 * t for t in theirs]
    row.baseline = statistics.median(row.baseline_samples)
    row.median = statistics.median(row.samples) - row.baseline
    least = min(row.samples) - min(row.baseline_samples)
    row.note = (f"import chronum {statistics.median(row.samples):.1f} ms whole process; "
                f"fastest runs differ by {least:.1f} ms (a negative median means noise "
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
    row.median = _peak([CHRONUM, "run", str(flow), "-q", "--db", str(db)], tmp) / MB
    took = time.perf_counter() - start
    _check_recorded(db, n)
    row.baseline = _peak([PY, "-c", "pass"], tmp) / MB
    row.samples, row.baseline_samples = [row.median], [row.baseline]
    row.note = f"the {n:,}-step run took {took:.2f} s"


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
    row.samples, row.baseline_samples = cold[1:], warm[1:]
    row.median = statistics.median(row.samples)
    row.note = (f"first call in a fresh process; a second call takes "
                f"{statistics.median(warm[1:]):.3f} s; building the db took {build_s:.1f} s")


# -- the plan and the report ----------------------------------------------------------------


def plan(sizes: wl.Sizes, tmp: Path, repeat: int, import_repeat: int,
         ) -> list[tuple[Row, Callable[[Row], None]]]:
    wl.write_noop_module(tmp)
    bare = [PY, "-c", "pass"]
    n3 = sizes.w3_shell
    asyncio_true = [PY, str(HERE / "asyncio_true.py"), str(n3)]
    floor = [PY, str(HERE / "floor.py")]
    flows = {
        "W0": ("1 step", wl.one_step(), 1, 0.08, [*floor, "W0"]),
        "W1": (f"{sizes.w1_fan:,} no-ops + 1 join", wl.fan_in(sizes.w1_fan), sizes.w1_fan + 1,
               0.20, [*floor, "W1", str(sizes.w1_fan)]),
        "W2": (f"{sizes.w2_chain}-step chain", wl.chain(sizes.w2_chain), sizes.w2_chain, 0.12,
               [*floor, "W2", str(sizes.w2_chain)]),
        "W4": (f"{sizes.w4_layers}x{sizes.w4_width} layers",
               wl.layers(sizes.w4_layers, sizes.w4_width), sizes.w4_layers * sizes.w4_width,
               0.17, [*floor, "W4", str(sizes.w4_layers), str(sizes.w4_width)]),
    }
    rows: list[tuple[Row, Callable[[Row], None]]] = []
    w0 = wl.write_flow(tmp, "w0", flows["W0"][1])

    def flow_bench(flow: Path, n: int, baseline: list[str],
                   floor: list[str] | None = None, new_db: bool = False
                   ) -> Callable[[Row], None]:
        return lambda row: bench_flow(row, tmp, flow, n, repeat, baseline, floor, new_db)

    for name, (what, text, n, budget, floor_cmd) in flows.items():
        flow = wl.write_flow(tmp, name.lower(), text)
        rows.append((Row(name, what, "s", budget=budget), flow_bench(flow, n, bare, floor_cmd)))
    # No budget: what the very first run of a project costs, creating its database.
    rows.insert(1, (Row("W0 new", "1 step, first run: new database", "s"),
                    flow_bench(w0, 1, bare, [*floor, "W0"], new_db=True)))
    w3 = wl.write_flow(tmp, "w3", wl.shell_true(n3))
    rows.insert(3, (Row("W3", f"{n3} shell `true`", "s", budget=1.2, budget_is_ratio=True),
                    flow_bench(w3, n3, asyncio_true)))
    rows += [
        (Row("import", "import chronum, added", "ms", budget=40.0),
         lambda row: bench_import(row, tmp, import_repeat)),
        (Row("heavy", "no pandas/IPython/graphviz/dask", "-"),
         lambda row: check_heavy_imports(row, tmp, w0)),
        (Row("memory", f"{sizes.memory_steps:,}-step flow, peak RSS", "MB", budget=150.0),
         lambda row: bench_memory(row, tmp, sizes.memory_steps)),
        (Row("steps()", f"chronum.steps(), {sizes.recorded_steps:,} steps", "s", budget=1.0),
         lambda row: bench_steps(row, tmp, sizes.recorded_steps, repeat)),
    ]
    return rows


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f} s"
    return f"{value:.1f} {unit}"


def _budget(row: Row) -> str:
    if row.name == "heavy":
        return "none"
    if row.budget is None:
        return "-"
    return f"<= {row.budget:g}x" if row.budget_is_ratio else f"<= {_fmt(row.budget, row.unit)}"


def print_table(rows: list[Row], quick: bool) -> None:
    head = ("workload", "what", "median", "baseline", "ratio", "floor", "x floor", "budget",
            "verdict")
    lines = [head]
    for r in rows:
        verdict = "ERROR" if r.error else {True: "PASS", False: "FAIL", None: "-"}[r.passed]
        ratio = "-" if r.ratio is None or r.name == "import" else f"{r.ratio:.2f}x"
        over = "-" if r.floor_ratio is None else f"{r.floor_ratio:.2f}x"
        lines.append((r.name, r.what, _fmt(r.median, r.unit), _fmt(r.baseline, r.unit), ratio,
                      _fmt(r.floor, r.unit), over, _budget(r), verdict))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for i, line in enumerate(lines):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print()
    for r in rows:
        if r.note or r.error:
            print(f"{r.name}: {r.error or r.note}")
    missed = [r.name for r in rows if r.passed is False]
    broken = [r.name for r in rows if r.error]
    print()
    print("baseline: `python -c pass` (W3: asyncio_true.py, the same processes from a bare loop); "
          "floor: floor.py, the workload's DAG as worker-thread no-ops after importing asyncio "
          "and sqlite3")
    if quick:
        print("--quick: reduced sizes and repetitions; verdicts are a smoke check only.")
    print(f"budgets missed: {', '.join(missed)}" if missed else "all measured budgets met")
    unreachable = [f"{r.name} (floor {_fmt(r.floor, r.unit)}, budget {_fmt(r.budget, r.unit)})"
                   for r in rows if r.below_floor]
    if unreachable:
        print(f"budgets below the floor on this machine: {', '.join(unreachable)}")
    if broken:
        print(f"could not measure: {', '.join(broken)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 repetitions and smaller workloads, for a smoke check")
    parser.add_argument("--repeat", type=int, help="measured runs per workload (default 5)")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    parser.add_argument("--only", metavar="NAMES",
                        help="comma-separated: W0,W0 new,W1,W2,W3,W4,import,heavy,memory,steps")
    parser.add_argument("--keep-env", action="store_true",
                        help="run every process in this environment unchanged (by default "
                             "bytecode caching is turned on, into the scratch folder)")
    args = parser.parse_args(argv)
    global ENV
    repeat = args.repeat or (3 if args.quick else 5)
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
        for row, bench in plan(sizes, Path(scratch), repeat, import_repeat):
            if only is not None and row.name.lower().strip("()") not in only:
                continue
            print(f"{row.name}: {row.what} ...", file=sys.stderr, flush=True)
            try:
                bench(row)
            except (BenchError, subprocess.CalledProcessError, OSError, sqlite3.Error) as exc:
                row.error = str(exc)
            if row.name != "heavy":
                row.judge()
            rows.append(row)
    load = (load_before, os.getloadavg()[0])
    floor_notes(rows)
    print_table(rows, args.quick)
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
            "results": [{**asdict(r), "ratio": r.ratio, "floor_ratio": r.floor_ratio,
                         "budget_below_floor": r.below_floor} for r in rows],
        }
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
