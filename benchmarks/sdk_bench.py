"""W1 written with the Python SDK against the same flow in YAML, whole ``chronum run`` processes.

    python benchmarks/sdk_bench.py [--quick] [--repeat N]

W1 is 1,000 independent no-op python steps and a join (``workloads.fan_in``). The SDK file
registers the same ``noop`` function under every step name; both runs record every step in a
fresh database. Timings alternate (YAML, SDK) so a busy machine slows both; the report is the
median of each and their ratio (issue #4's budget: SDK within 1.1x of YAML).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import workloads as wl

CHRONUM = str(Path(sys.executable).parent / "chronum")
BUDGET = 1.1


def sdk_fan_in(n: int) -> str:
    """The SDK twin of ``workloads.fan_in``: same names, options and function."""
    return (
        "import chronum\n"
        f"from {wl.NOOP_MODULE} import noop\n\n"
        'flow = chronum.Flow("w1-fan-in", max_parallel=2)\n'
        f"names = [f's{{i}}' for i in range({n})]\n"
        "for name in names:\n"
        "    flow.step(name)(noop)\n"
        'flow.step("join", needs=names)(noop)\n'
    )


def _env(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as a user's install: bytecode cached
    env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    env["CHRONUM_CACHE_DIR"] = str(scratch / "chronum-cache")  # not the user's ~/.cache
    return env


def _timed(flow: Path, db: Path, env: dict[str, str], n_steps: int) -> float:
    start = time.perf_counter()
    done = subprocess.run([CHRONUM, "run", flow.name, "--db", str(db), "-q"], cwd=flow.parent,
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          check=False)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{flow.name} failed: {done.stderr.decode(errors='replace')[-500:]}")
    with contextlib.closing(sqlite3.connect(db)) as conn:
        ok = conn.execute("SELECT COUNT(*) FROM steps WHERE status = 'succeeded'").fetchone()[0]
    if ok != n_steps:
        raise SystemExit(f"{flow.name}: {ok} of {n_steps} steps recorded succeeded")
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 steps instead of 1,000")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs of each (>= 5)")
    args = parser.parse_args(argv)
    n = wl.SIZES["quick" if args.quick else "full"].w1_fan
    repeat = max(5, args.repeat)
    with tempfile.TemporaryDirectory(prefix="chronum-sdk-bench-") as tmp:
        scratch = Path(tmp)
        wl.write_noop_module(scratch)
        yaml_flow, sdk_flow = scratch / "w1.yaml", scratch / "w1.py"
        yaml_flow.write_text(wl.flow_yaml(wl.fan_in(n)), encoding="utf-8")
        sdk_flow.write_text(sdk_fan_in(n), encoding="utf-8")
        env = _env(scratch)
        samples: dict[str, list[float]] = {"yaml": [], "sdk": []}
        for i in range(repeat + 1):  # run 0 warms the bytecode caches and is not counted
            for kind, flow in (("yaml", yaml_flow), ("sdk", sdk_flow)):
                took = _timed(flow, scratch / "db" / f"{kind}-{i}" / "c.db", env, n + 1)
                if i:
                    samples[kind].append(took)
    yaml_s, sdk_s = statistics.median(samples["yaml"]), statistics.median(samples["sdk"])
    ratio = sdk_s / yaml_s
    print(f"W1 ({n:,} no-ops + 1 join), whole process, median of {repeat}:")
    print(f"  YAML  {yaml_s:.3f} s   (runs: {', '.join(f'{s:.3f}' for s in samples['yaml'])})")
    print(f"  SDK   {sdk_s:.3f} s   (runs: {', '.join(f'{s:.3f}' for s in samples['sdk'])})")
    verdict = "within" if ratio <= BUDGET else "OVER"
    print(f"  SDK / YAML = {ratio:.2f}x ({verdict} the {BUDGET}x budget)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
