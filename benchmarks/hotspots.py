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


def flow_text(name: str, sizes: wl.Sizes) -> str:
    return {
        "W0": wl.one_step(),
        "W1": wl.fan_in(sizes.w1_fan),
        "W2": wl.chain(sizes.w2_chain),
        "W3": wl.shell_true(sizes.w3_shell),
        "W4": wl.layers(sizes.w4_layers, sizes.w4_width),
    }[name]


def import_report(flow: Path, tmp: Path, env: dict[str, str], runs: int, top: int) -> None:
    best: dict[str, int] = {}
    parent_of: dict[str, str] = {}  # module -> the top-level import that pulled it in
    for i in range(runs):
        db = tmp / f"imports-{i}" / "chronum.db"
        done = subprocess.run([sys.executable, "-X", "importtime", CHRONUM, "run", str(flow),
                               "-q", "--db", str(db)], cwd=tmp, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              check=False)
        pending: list[str] = []
        for line in done.stderr.splitlines():
            m = _LINE.match(line)
            if m is None:
                continue
            self_us, depth, module = int(m[1]), (len(m[3]) - 1) // 2, m[4]
            best[module] = min(best.get(module, self_us), self_us)
            pending.append(module)
            if depth == 0:  # importtime prints children first, then the module that pulled them
                for child in pending:
                    parent_of.setdefault(child, module)
                pending.clear()
    groups: dict[str, int] = defaultdict(int)
    for module, us in best.items():
        root = module if module.startswith("chronum") else parent_of.get(module, module)
        groups[root.split(".")[0] if not root.startswith("chronum") else root] += us
    print(f"imports of `chronum run` (min self time over {runs} runs): "
          f"{sum(best.values()) / 1000:.1f} ms in {len(best)} modules")
    print("  by chronum module, or the top-level import that pulled it in:")
    for name, us in sorted(groups.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {us / 1000:7.1f} ms  {name}")
    print("  slowest single modules:")
    for name, us in sorted(best.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {us / 1000:7.1f} ms  {name}")


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
        flow = wl.write_flow(tmp, args.workload.lower(), flow_text(args.workload, sizes))
        subprocess.run([CHRONUM, "run", str(flow), "-q", "--db", str(tmp / "fill.db")],
                       cwd=tmp, env=env, stdout=subprocess.DEVNULL, check=False)  # .pyc files
        import_report(flow, tmp, env, args.runs, args.top)
        os.chdir(tmp)
        run_profile(flow, tmp, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
