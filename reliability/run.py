"""Run the reliability suite and print its table: ``python reliability/run.py [--quick]``.

``--full`` (the default, ``make reliability``) runs the sizes docs/reliability.md publishes;
``--quick`` the small sizes of ``make test``. Every figure comes from a check that raises when
the property breaks; a broken check is printed as FAILED and the command exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reliability._common import Figure
from reliability.containment import (
    check_detached_trees,
    check_error_path_descriptors,
    check_fatal_signals,
    check_runner_sigkill,
)
from reliability.disk import check_full_disk
from reliability.edges import check_cycle_linear, check_database_removed
from reliability.fuzz import check_fuzz
from reliability.kernel import check_kernel_kill
from reliability.resume import (
    check_concurrent_resumes,
    check_orphan_overlap,
    check_resume_exactness,
)
from reliability.runs import check_concurrency, check_crashes, check_fan_in_crashes
from reliability.secrets import check_secret_paths
from reliability.system import (
    check_big_output,
    check_descriptors_and_zombies,
    check_process_trees,
    check_read_only_database,
)

SIZES = {
    "full": {"kills": 50, "kernel_kills": 10, "crash_steps": 200, "fan_groups": 12, "procs": 8,
             "proc_steps": 200, "trees": 5, "fd_steps": 10_000, "megabytes": 200,
             "limit_mb": 150, "examples": 3_400, "cycle_steps": 100_000, "secret_runs": 10,
             "detached": 5, "sigkills": 10, "failing_calls": 500,
             "signals": ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2",
                         "SIGALRM", "SIGXCPU"],
             "resume_cycles": 50, "resume_steps": 1_000, "orphan_kills": 5},
    "quick": {"kills": 3, "kernel_kills": 1, "crash_steps": 60, "fan_groups": 4, "procs": 4,
              "proc_steps": 50,
              "trees": 1, "fd_steps": 300, "megabytes": 20, "limit_mb": 150, "examples": 100,
              "cycle_steps": 2_000, "secret_runs": 1, "detached": 1, "sigkills": 1,
              "failing_calls": 50, "signals": ["SIGHUP", "SIGUSR1", "SIGXCPU"],
              "resume_cycles": 4, "resume_steps": 50, "orphan_kills": 1},
}


def checks(size: dict[str, Any], work: Path) -> list[tuple[str, Callable[[], list[Figure]]]]:
    return [
        ("crashes", lambda: check_crashes(work, size["kills"], size["crash_steps"])),
        ("fan-in", lambda: check_fan_in_crashes(work, size["kills"], size["fan_groups"])),
        ("kernel", lambda: check_kernel_kill(work, size["kernel_kills"], size["crash_steps"])),
        ("concurrency", lambda: check_concurrency(work, size["procs"], size["proc_steps"])),
        ("resume", lambda: check_resume_exactness(work, size["resume_cycles"],
                                                  size["resume_steps"])),
        ("resume", lambda: check_concurrent_resumes(work, 2)
         + check_concurrent_resumes(work, 4)),
        ("resume", lambda: check_orphan_overlap(work, size["orphan_kills"])),
        ("processes", lambda: check_process_trees(work, size["trees"])),
        ("detached", lambda: check_detached_trees(work, size["detached"])),
        ("signals", lambda: check_fatal_signals(work, size["signals"])),
        ("sigkill", lambda: check_runner_sigkill(work, size["sigkills"])),
        ("error paths", lambda: check_error_path_descriptors(work / "errors",
                                                             size["failing_calls"])),
        ("descriptors", lambda: check_descriptors_and_zombies(work / "fd", size["fd_steps"])),
        ("big output", lambda: check_big_output(work, size["megabytes"], size["limit_mb"])),
        ("read-only", lambda: check_read_only_database(work)),
        ("full disk", lambda: check_full_disk(work)),
        ("fuzz", lambda: check_fuzz(size["examples"])),
        ("cycle", lambda: check_cycle_linear(size["cycle_steps"], limit_ratio=40.0)),
        ("database removed", lambda: check_database_removed(work)),
        ("secrets", lambda: check_secret_paths(work, size["secret_runs"])),
    ]


def table(rows: list[tuple[Figure, float]]) -> str:
    lines = ["| Check | Property | Figure | Time |", "|---|---|---|---|"]
    lines += [f"| {f.check} | {f.what} | {f.figure} | {f'{t:.0f} s' if t else ''} |"
              for f, t in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--full", dest="size", action="store_const", const="full")
    mode.add_argument("--quick", dest="size", action="store_const", const="quick")
    parser.add_argument("--only", action="append", help="run only these checks (repeatable)")
    args = parser.parse_args(argv)
    size = SIZES[args.size or "full"]
    rows: list[tuple[Figure, float]] = []
    failed = 0
    with tempfile.TemporaryDirectory(prefix="chronum-reliability-") as tmp:
        # Every flow loaded here, in this process or a child, caches in the scratch folder.
        os.environ["CHRONUM_CACHE_DIR"] = str(Path(tmp) / "flow-cache")
        for name, check in checks(size, Path(tmp)):
            if args.only and name not in args.only:
                continue
            print(f"… {name}", file=sys.stderr, flush=True)
            started = time.monotonic()
            try:
                figures = check()
            except Exception as exc:
                failed += 1
                traceback.print_exc()
                figures = [Figure(name, "FAILED", f"{type(exc).__name__}: {exc}"[:120])]
            took = time.monotonic() - started
            rows += [(f, took if i == 0 else 0.0) for i, f in enumerate(figures)]
    print(f"Reliability ({args.size or 'full'}), {time.strftime('%Y-%m-%d')}:\n")
    print(table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
