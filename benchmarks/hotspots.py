"""Where the time of ``chronum run`` goes: imports, then the run itself under cProfile.

    python benchmarks/hotspots.py [W0|W1|W2|W3|W4] [--top N] [--quick]

Part 1 runs ``chronum run`` under ``-X importtime`` several times and prints, per module, the
smallest self time seen (the minimum is the least disturbed by a busy machine), grouped by the
top-level package that pulled it in. Part 2 loads the flow and runs it in this process with
cProfile (after one unprofiled warm-up run, so imports and first-call caches are excluded) and
prints the functions with the most time of their own. Same scratch folder and bytecode-cache
rules as ``run.py``.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import workloads as wl
from run import CHRONUM, child_env

_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def workload(name: str, sizes: wl.Sizes) -> wl.Workload:
    return {
        "W0": wl.one_step(),
        "W1": wl.fan_in(sizes.w1_fan),
        "W2": wl.chain(sizes.w2_chain),
        "W3": wl.shell_true(sizes.w3_shell),
        "W4": wl.layers(sizes.w4_layers, sizes.w4_width),
    }[name]


def _owners(lines: list[tuple[str, int]]) -> dict[str, str]:
    """Module -> the nearest chronum module that pulled it in (or its top-level import).

    ``-X importtime`` prints children before their parent; read backwards it is a pre-order
    walk, so a stack by depth gives every module its ancestors.
    """
    owner: dict[str, str] = {}
    stack: list[str] = []
    for module, depth in reversed(lines):
        del stack[depth:]
        stack.append(module)
        chronum_ancestors = [m for m in stack if m.startswith("chronum")]
        owner.setdefault(module, chronum_ancestors[-1] if chronum_ancestors else stack[0])
    return owner


def import_report(flow: Path, tmp: Path, env: dict[str, str], runs: int, top: int) -> None:
    best: dict[str, int] = {}
    owner: dict[str, str] = {}
    for i in range(runs):
        db = tmp / f"imports-{i}" / "chronum.db"
        done = subprocess.run([sys.executable, "-X", "importtime", CHRONUM, "run", str(flow),
                               "-q", "--db", str(db)], cwd=tmp, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              check=False)
        lines: list[tuple[str, int]] = []
        for line in done.stderr.splitlines():
            m = _LINE.match(line)
            if m is not None:
                best[m[4]] = min(best.get(m[4], int(m[1])), int(m[1]))
                lines.append((m[4], (len(m[3]) - 1) // 2))
        for module, who in _owners(lines).items():
            owner.setdefault(module, who)
    groups: dict[str, int] = defaultdict(int)
    for module, us in best.items():
        groups[owner.get(module, module)] += us
    print(f"imports of `chronum run` (min self time over {runs} runs): "
          f"{sum(best.values()) / 1000:.1f} ms in {len(best)} modules")
    print("  by the chronum module that imported them (itself included), else the top-level "
          "import:")
    for name, us in sorted(groups.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {us / 1000:7.1f} ms  {name}")
    print("  slowest single modules (self time):")
    for name, us in sorted(best.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {us / 1000:7.1f} ms  {name}  (via {owner.get(name, '?')})")


def run_profile(flow: Path, tmp: Path, top: int) -> None:
    from chronum import api

    api.run(api.load(flow), db=tmp / "warm-up" / "chronum.db")
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    loaded = api.load(flow)
    result = api.run(loaded, db=tmp / "profiled" / "chronum.db")
    profiler.disable()
    took = time.perf_counter() - start
    print(f"\nin-process load + run: {took:.3f} s under cProfile, run {result.status}")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", nargs="?", default="W1", choices=["W0", "W1", "W2", "W3",
                                                                      "W4"])
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--runs", type=int, default=7, help="-X importtime runs")
    parser.add_argument("--quick", action="store_true", help="the --quick sizes")
    args = parser.parse_args()
    sizes = wl.SIZES["quick" if args.quick else "full"]
    with tempfile.TemporaryDirectory(prefix="chronum-profile-") as scratch:
        tmp = Path(scratch)
        env = child_env(tmp)
        wl.write_noop_module(tmp)
        flow = wl.write_flow(tmp, args.workload.lower(), workload(args.workload, sizes))
        subprocess.run([CHRONUM, "run", str(flow), "-q", "--db", str(tmp / "fill.db")],
                       cwd=tmp, env=env, stdout=subprocess.DEVNULL, check=False)  # .pyc files
        import_report(flow, tmp, env, args.runs, args.top)
        os.chdir(tmp)
        run_profile(flow, tmp, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
