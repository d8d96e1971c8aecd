"""What caching costs and saves (issue 13), as ratios measured in one run.

    python benchmarks/cache.py [--quick] [--repeat N] [--json PATH]

Rows, each ``chronum run`` in its own process unless said otherwise, runs interleaved and the
median taken. A ratio compares the command's time once its modules are imported (loading the
flow, planning, running, recording: what caching changes); the whole processes' ratio is shown
beside it, as importing costs the same either way.

- **keys on W1**: W1 (1,000 in-process no-ops and a join) with ``cache: true`` on a fresh
  database (every key computed and recorded, nothing to reuse) against the same flow without
  caching. Budget: at most 1.10x.
- **cached W1**: W1 with ``cache: true`` run again, every step reused, against the uncached run.
  Budget: at most 0.5x.
- **cached sleep flow**: a 10-step flow whose ``load`` sleeps 5 s, run again fully cached: the
  run's own duration (engine time, as recorded) must stay under 0.1 s; the process's wall
  time is shown beside the time of a process that only imports the CLI.
- **1 GB input**: a step with a 1 GB ``inputs:`` file (sparse, so it costs no disk), keyed in
  this process twice through the store's input hashes: bytes read (``rchar`` of
  ``/proc/self/io``) the first time (the file, once) and the second time (none of it).

``--quick`` uses small sizes (100 steps, a 0.5 s sleep, a 64 MB input) for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workloads as wl  # noqa: E402

PY = sys.executable


def _cached(text: str) -> str:
    """The flow text with ``cache: true`` at the top."""
    head, rest = text.split("\n", 1)
    return f"{head}\ncache: true\n{rest}"


#: ``chronum run`` as a process that also says how long the command took once imported: the
#: figures below compare that (load, plan, run, record), beside the whole process's time.
_DRIVER = """
import sys, time
import chronum.cli.commands
from chronum.cli import main
started = time.perf_counter()
code = main(sys.argv[1:])
sys.stderr.write(f"\\nCHRONUM-RUN-S {time.perf_counter() - started}\\n")
sys.exit(code)
"""


class Timed:
    def __init__(self, wall: float, inside: float) -> None:
        self.wall, self.inside = wall, inside


def _run(folder: Path, flow: Path, db: Path) -> Timed:
    started = time.perf_counter()
    proc = subprocess.run([PY, "-c", _DRIVER, "run", str(flow), "--db", str(db), "-q"],
                          cwd=folder, capture_output=True, text=True)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"chronum run {flow.name} failed:\n{proc.stdout}\n{proc.stderr}")
    inside = float(proc.stderr.rsplit("CHRONUM-RUN-S ", 1)[1].split()[0])
    return Timed(took, inside)


def _run_duration(db: Path) -> float:
    import sqlite3

    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT finished_at - started_at FROM runs "
                           "ORDER BY started_at DESC LIMIT 1").fetchone()
    return float(row[0])


def w1_rows(folder: Path, steps: int, repeat: int) -> dict[str, float]:
    wl.write_noop_module(folder)
    workload = wl.fan_in(steps)
    plain = folder / "w1.yaml"
    plain.write_text(wl.flow_yaml(workload))
    cached = folder / "w1_cached.yaml"
    cached.write_text(_cached(wl.flow_yaml(workload)))
    warm = folder / "warm.db"
    _run(folder, plain, folder / "first.db")  # warm the flow cache and the OS's
    _run(folder, cached, warm)
    times: dict[str, list[Timed]] = {"plain": [], "keys": [], "hit": []}
    for i in range(repeat):
        times["plain"].append(_run(folder, plain, folder / f"plain{i}.db"))
        times["keys"].append(_run(folder, cached, folder / f"keys{i}.db"))
        times["hit"].append(_run(folder, cached, warm))
    med = {k: statistics.median(t.inside for t in v) for k, v in times.items()}
    wall = {k: statistics.median(t.wall for t in v) for k, v in times.items()}
    return {"w1_plain_s": med["plain"], "w1_keys_s": med["keys"], "w1_hit_s": med["hit"],
            "keys_ratio": med["keys"] / med["plain"], "hit_ratio": med["hit"] / med["plain"],
            "w1_plain_wall_s": wall["plain"], "w1_keys_wall_s": wall["keys"],
            "w1_hit_wall_s": wall["hit"], "keys_wall_ratio": wall["keys"] / wall["plain"],
            "hit_wall_ratio": wall["hit"] / wall["plain"]}


SLEEP_FLOW = """name: sleepy
cache: true
steps:
  - name: load
    run: sleep {sleep}
{rest}"""


def sleep_rows(folder: Path, sleep: float, repeat: int) -> dict[str, float]:
    rest = "".join(f"  - name: s{i}\n    run: echo {i}\n    needs: [load]\n" for i in range(9))
    flow = folder / "sleepy.yaml"
    flow.write_text(SLEEP_FLOW.format(sleep=sleep, rest=rest))
    db = folder / "sleepy.db"
    first = _run(folder, flow, db).wall
    walls, insides, engines, starts = [], [], [], []
    for _ in range(repeat):
        timed = _run(folder, flow, db)
        walls.append(timed.wall)
        insides.append(timed.inside)
        engines.append(_run_duration(db))
        started = time.perf_counter()
        subprocess.run([PY, "-c", "import chronum.cli.commands"], check=True)
        starts.append(time.perf_counter() - started)
    return {"sleep_first_s": first, "sleep_cached_wall_s": statistics.median(walls),
            "sleep_cached_command_s": statistics.median(insides),
            "sleep_cached_engine_s": statistics.median(engines),
            "process_start_s": statistics.median(starts)}


def _rchar() -> int:
    with open("/proc/self/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("rchar:"))


def input_rows(folder: Path, size: int) -> dict[str, float]:
    from chronum import load
    from chronum.engine.cache import step_keys
    from chronum.store import Store
    from chronum.store.keys import InputHashes

    big = folder / "big.bin"
    with open(big, "wb") as fh:
        fh.truncate(size)
    old = time.time() - 3600  # past the racy window: the hash may be remembered
    os.utime(big, (old, old))
    flow_path = folder / "big.yaml"
    flow_path.write_text("name: big\ncache: true\nsteps:\n  - name: a\n    run: 'true'\n"
                         "    inputs: [big.bin]\n")
    flow = load(flow_path)
    read = []
    for _ in range(2):
        with Store(folder / "big.db") as store:
            memo = InputHashes(store)
            before = _rchar()
            step_keys(flow, memo=memo)
            read.append(_rchar() - before)
            memo.save()
    return {"input_bytes": size, "first_read": read[0], "second_read": read[1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    steps, sleep, size = (100, 0.5, 64 << 20) if args.quick else (1_000, 5.0, 1 << 30)
    repeat = args.repeat or (3 if args.quick else 7)
    with tempfile.TemporaryDirectory(prefix="chronum-cache-bench-") as tmp:
        folder = Path(tmp)
        figures = {**w1_rows(folder, steps, repeat), **sleep_rows(folder, sleep, repeat),
                   **input_rows(folder, size)}
    verdicts = [
        (f"keys on W1 ({steps} steps), cache: true vs none",
         f"{figures['keys_ratio']:.2f}x", figures["keys_ratio"] <= 1.10, "<= 1.10x"),
        ("  the same, whole processes", f"{figures['keys_wall_ratio']:.2f}x", True, ""),
        ("cached re-run of W1 vs uncached", f"{figures['hit_ratio']:.2f}x",
         figures["hit_ratio"] <= 0.5, "<= 0.5x"),
        ("  the same, whole processes", f"{figures['hit_wall_ratio']:.2f}x", True, ""),
        (f"cached re-run, 10 steps, load sleeps {sleep:g} s: the run",
         f"{figures['sleep_cached_engine_s']:.3f} s", figures["sleep_cached_engine_s"] <= 0.1,
         "<= 0.1 s"),
        ("  the command once imported (load, plan, run, record)",
         f"{figures['sleep_cached_command_s']:.3f} s", True, ""),
        ("  the whole process (importing the CLI alone)",
         f"{figures['sleep_cached_wall_s']:.2f} s ({figures['process_start_s']:.2f} s)", True,
         ""),
        (f"input of {size >> 20} MB: bytes read, first run",
         f"{figures['first_read'] / (1 << 20):,.1f} MB", figures["first_read"] >= size,
         ">= the file"),
        ("  second run", f"{figures['second_read']:,} B",
         figures["second_read"] < size // 100, "none of the file"),
    ]
    width = max(len(v[0]) for v in verdicts)
    for what, figure, ok, budget in verdicts:
        mark = "" if not budget else ("ok " if ok else "OVER ")
        print(f"{what:<{width}}  {figure:>22}  {mark}{budget}")
    print(f"(W1 medians of {repeat}, the command once imported: uncached "
          f"{figures['w1_plain_s']:.2f} s, first cached run {figures['w1_keys_s']:.2f} s, "
          f"fully cached {figures['w1_hit_s']:.2f} s; whole processes "
          f"{figures['w1_plain_wall_s']:.2f} / {figures['w1_keys_wall_s']:.2f} / "
          f"{figures['w1_hit_wall_s']:.2f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0 if all(ok for _, _, ok, _ in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
