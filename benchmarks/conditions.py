"""What ``if:`` conditions cost (issue 14): W1 at 10,000 steps, plain and with a condition on
every step, side by side in one run.

    python benchmarks/conditions.py [--quick] [--repeat N] [--steps N]

- **plain**: W1's shape (``workloads.fan_in``): N in-process no-op ``call:`` steps, then a join
  needing all of them;
- **if**: the same flow where every no-op has ``if: params.mode == 'full' and env.HOME != ''``
  (true, so every step still runs) and the join is a handler,
  ``if: always() and steps.s0.status == 'succeeded'``, which folds the state of all N steps
  upstream.

Whole processes on a shared machine differ by more than 5 % from run to run (the medians of
two such ratios, minutes apart, have differed by 20 %), so the budget is judged from inside
one run: the time the engine spends deciding conditions (``Handlers.admit``, the join's fold
of 10,000 states included) as a share of the whole run (``share``, printed first; a child
process runs the ``if`` flow with ``admit`` timed). The whole-process ratios are printed too.

Each run is a whole ``chronum run`` process (load, run, record), after one warm-up each (which
fills the flow cache, as a user's second run finds it); runs are interleaved (plain, if, plain,
...) and every run is checked in its database. The budget: the conditions add at most 5 % to
W1: ``share`` ≤ 5 %; on a quiet machine ``if`` / ``plain`` ≤ 1.05 as well.
"""

from __future__ import annotations

import sys

BUDGET = 1.05
CONDITION = "params.mode == 'full' and env.HOME != ''"
JOIN_CONDITION = "always() and steps.s0.status == 'succeeded'"


def conditional_yaml(n: int) -> str:
    """W1 with ``n`` no-ops, each with an ``if:``, and a handler as the join."""
    import json

    import workloads as wl

    plain = wl.flow_yaml(wl.fan_in(n))
    head, _, steps = plain.partition("steps:\n")
    out = [head.replace("maxParallel", "params: {mode: full}\nmaxParallel", 1), "steps:\n"]
    for block in steps.split("  - name: ")[1:]:
        cond = JOIN_CONDITION if block.startswith("join\n") else CONDITION
        out.append(f"  - name: {block}    if: {json.dumps(cond)}\n")
    return "".join(out)


def _share(path: str, db: str) -> None:
    """In this process: run the flow at ``path`` and print the share of its time spent in
    ``Handlers.admit`` (``admit_s total_s``)."""
    import time

    import chronum
    from chronum.engine import handlers

    spent = 0.0
    admit = handlers.Handlers.admit

    def timed(self: handlers.Handlers, step: chronum.model.Step) -> bool:
        nonlocal spent
        start = time.perf_counter()
        try:
            return admit(self, step)
        finally:
            spent += time.perf_counter() - start

    handlers.Handlers.admit = timed  # type: ignore[method-assign]
    start = time.perf_counter()
    run = chronum.run(path, db=db)
    total = time.perf_counter() - start
    if run.status != "succeeded":
        raise SystemExit(f"the flow {run.status}")
    print(f"{spent} {total}")


def main(argv: list[str] | None = None) -> int:
    import argparse
    import resource
    import statistics
    import subprocess
    import tempfile
    import time
    from pathlib import Path

    import run as bench
    import workloads as wl

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 steps, 3 repetitions")
    parser.add_argument("--repeat", type=int, help="measured runs each (default 5)")
    parser.add_argument("--steps", type=int, help="no-op steps (default 10,000)")
    args = parser.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 5)
    n = args.steps or (1_000 if args.quick else 10_000)
    with tempfile.TemporaryDirectory(prefix="chronum-conditions-") as scratch:
        tmp = Path(scratch)
        env = bench.child_env(tmp)
        wl.write_noop_module(tmp)
        flows = {"plain": wl.write_flow(tmp, "plain", wl.fan_in(n))}
        flows["if"] = tmp / "if.yaml"
        flows["if"].write_text(conditional_yaml(n), encoding="utf-8")

        def once(variant: str) -> tuple[float, float]:
            """Wall seconds, and CPU seconds (user + system) of the ``chronum`` process."""
            db = bench._db(tmp, variant, 0)
            cmd = [sys.executable, "-m", "chronum", "run", str(flows[variant]), "-q",
                   "--db", str(db)]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            done = subprocess.run(cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, check=False)
            took = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if done.returncode != 0:
                raise SystemExit(f"{variant}: {done.stderr.decode()[-500:]}")
            bench._check_recorded(db, n + 1)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            return took, cpu

        for variant in flows:  # warm-up: bytecode and flow caches
            once(variant)
        shares = []
        for i in range(repeat):
            done = subprocess.run(
                [sys.executable, __file__, "--share", str(flows["if"]),
                 str(bench._db(tmp, "share", i))],
                cwd=tmp, env=env, capture_output=True, text=True, check=True)
            spent, total = map(float, done.stdout.split())
            shares.append(spent / total)
        share = statistics.median(shares)
        print(f"W1 with {n:,} no-ops + 1 join: deciding the conditions takes {share:.2%} of "
              f"the run (median of {repeat}; budget 5 %: {'met' if share <= 0.05 else 'missed'})")
        times: dict[str, list[tuple[float, float]]] = {v: [] for v in flows}
        for _ in range(repeat):
            for variant in flows:
                times[variant].append(once(variant))
    print(f"W1 with {n:,} no-ops + 1 join, whole `chronum run`, median of {repeat}:")
    ratios = {}
    for i, what in enumerate(("wall", "cpu")):
        for pick in (statistics.median, min):
            plain, cond = (pick(t[i] for t in times[v]) for v in ("plain", "if"))
            ratios[what, pick.__name__] = cond / plain
            print(f"  {what:4} {pick.__name__:6}  plain {plain:.3f} s   with if: {cond:.3f} s"
                  f"   ratio {cond / plain:.3f}x")
    ratio = ratios["wall", "median"]
    print(f"  whole-process wall ratio <= {BUDGET:.2f}x: {'yes' if ratio <= BUDGET else 'no'}"
          " (compare run to run: on a busy machine the noise exceeds the budget)")
    return 0 if share <= BUDGET - 1 else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--share"]:
        _share(sys.argv[2], sys.argv[3])
        raise SystemExit(0)
    raise SystemExit(main())
