"""What "durable before released" (issue 16) costs: W1, W2 and W4 three ways, side by side.

    python benchmarks/durability.py [--quick] [--repeat N] [--only W1,W2,W4]

- **new**: Chronum as shipped: every attempt, and the end of every step that released it, is
  committed before the attempt starts (one commit for the steps of one loop turn);
- **full**: the same with ``CHRONUM_DURABILITY=full`` (``PRAGMA synchronous = FULL``: the WAL
  is synced at every commit);
- **old**: the buffered writer from before issue 16, restored here by a subclass that never
  makes an attempt wait (commits come only from the ~50 ms timer). It exists in this file only.

Each contestant is a whole process running ``chronum run`` through this file's driver
(``--as new|full|old``), so all three pay the same start-up; runs are interleaved (new, full,
old, new, ...) after one warm-up each and every run is checked in its database, as in
``run.py``. The table gives medians and the ratios new/old and full/new. How chronum compares
to doit is ``run.py``'s business (``python benchmarks/run.py --only W1,W2,W4``).
"""

from __future__ import annotations

import sys


def _drive(variant: str, argv: list[str]) -> None:
    """Be ``chronum`` (``argv`` is its command line), with the writer ``variant`` asks for."""
    if variant == "old":
        import asyncio

        import chronum.session
        from chronum.store.writer import StoreWriter

        class BufferedWriter(StoreWriter):
            """The writer before issue 16: nothing waits for a commit before a step starts."""

            def barrier(self) -> asyncio.Future[None]:
                done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                done.set_result(None)  # awaiting a done future never yields to the loop
                return done

        chronum.session.StoreWriter = BufferedWriter  # type: ignore[misc]
    from chronum.cli import console

    sys.argv = ["chronum", *argv]
    console()


def main(argv: list[str] | None = None) -> int:
    import argparse
    import os
    import statistics
    import subprocess
    import tempfile
    import time
    from pathlib import Path

    import run as bench
    import workloads as wl

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small workloads, 3 repetitions")
    parser.add_argument("--repeat", type=int, help=f"measured runs each (default {bench.REPEAT})")
    parser.add_argument("--only", metavar="NAMES", help="comma-separated: W1,W2,W4")
    args = parser.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else bench.REPEAT)
    sizes = wl.SIZES["quick" if args.quick else "full"]
    workloads = {"W1": wl.fan_in(sizes.w1_fan), "W2": wl.chain(sizes.w2_chain),
                 "W4": wl.layers(sizes.w4_layers, sizes.w4_width)}
    only = {n.strip().upper() for n in args.only.split(",")} if args.only else set(workloads)
    here = str(Path(__file__).resolve())
    rows = []
    with tempfile.TemporaryDirectory(prefix="chronum-durability-") as scratch:
        tmp = Path(scratch)
        env = bench.child_env(tmp)
        env.pop("CHRONUM_DURABILITY", None)
        wl.write_noop_module(tmp)
        for name, workload in workloads.items():
            if name not in only:
                continue
            print(f"{name} ...", file=sys.stderr, flush=True)
            flow = wl.write_flow(tmp, name.lower(), workload)

            def runner(variant: str, flow: Path = flow, n: int = len(workload.steps),
                       key: str = name.lower()) -> bench.Runner:
                db = bench._db(tmp, f"{key}-{variant}", 0)
                cmd = [sys.executable, here, "--as", "new" if variant == "full" else variant,
                       "run", str(flow), "-q", "--db", str(db)]
                run_env = {**env, "CHRONUM_DURABILITY": "full"} if variant == "full" else env

                def once(_: int) -> float:
                    start = time.perf_counter()
                    done = subprocess.run(cmd, cwd=tmp, env=run_env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, check=False)
                    took = time.perf_counter() - start
                    if done.returncode != 0:
                        raise SystemExit(f"{key} {variant}: {done.stderr.decode()[-500:]}")
                    bench._check_recorded(db, n)
                    return took

                return once

            samples = bench.interleave([(v, runner(v)) for v in ("new", "full", "old")], repeat)
            medians = {v: statistics.median(s) for v, s in samples.items()}
            rows.append((name, workload, medians))
    print(f"\nDurable before released, {time.strftime('%Y-%m-%d')}, medians of {repeat} "
          f"interleaved runs, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}:\n")
    print("| Workload | new | full | old (buffered) | new / old | full / new |")
    print("|---|---|---|---|---|---|")
    for name, workload, m in rows:
        print(f"| {name}: {len(workload.steps)} steps | {m['new']:.3f} s | {m['full']:.3f} s | "
              f"{m['old']:.3f} s | {m['new'] / m['old']:.2f}x | {m['full'] / m['new']:.2f}x |")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--as":
        _drive(sys.argv[2], sys.argv[3:])
    sys.exit(main())
