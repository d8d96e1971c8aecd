"""The benchmarks that keep a less plain construct in ``chronum/`` (``make bench`` runs them).

    python benchmarks/choices.py [--repeat N] [--json PATH]

The project's rule: plain Python, unless a benchmark shows that the other form saves at least
5 % of a workload. Each construct below is measured against its plain form, in the same
invocation, and reported as a share of W0 as chronum runs it (a one-step ``chronum run`` with
the chosen forms: the workload that pays for start-up and exit), so the choice can be checked
again on any machine and Python:

- ``events``: ``chronum.eventbus``'s hand-written event classes, against the same eleven kinds
  as frozen, slotted, keyword-only dataclasses (generated here from the classes' own fields).
  Timed as the import of each module in a fresh interpreter that has already imported what
  ``chronum run`` imports anyway (asyncio, sqlite3, dataclasses, logging, typing).
- ``exit``: ``chronum.cli.console`` freezes the objects left before the normal interpreter
  exit; the plain form is the same ``main`` followed by ``sys.exit``. Timed as whole W0 runs.

This is a report: it exits 0 whatever the verdicts, 1 only when something could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workloads as wl  # noqa: E402

PY = sys.executable
#: A construct stays while it saves at least this share of W0.
KEEP_AT = 0.05
PRELUDE = "import asyncio, sqlite3, dataclasses, logging, typing, json, pathlib\n"


def dataclass_events_module() -> str:
    """``chronum.eventbus``'s event kinds as frozen slotted dataclasses: the plain form."""
    from chronum import eventbus

    kinds = [getattr(eventbus, name) for name in eventbus.__all__
             if isinstance(getattr(eventbus, name), type)
             and issubclass(getattr(eventbus, name), eventbus.Event)
             and getattr(eventbus, name) is not eventbus.Event]
    lines = [
        "from __future__ import annotations",
        "import time",
        "from dataclasses import dataclass, field",
        "from typing import Any, ClassVar",
        "",
        "@dataclass(frozen=True, slots=True, kw_only=True)",
        "class Event:",
        "    kind: ClassVar[str] = 'event'",
        "    run_id: str",
        "    at: float = field(default_factory=time.time)",
        "    step: str | None = None",
        "    attempt: int | None = None",
    ]
    for cls in kinds:
        lines += ["", "@dataclass(frozen=True, slots=True, kw_only=True)",
                  f"class {cls.__name__}(Event):", f"    kind: ClassVar[str] = {cls.kind!r}"]
        lines += [f"    {name}: Any = None" for name in cls.FIELDS]
    return "\n".join(lines) + "\n"


def _run(code: str, cwd: Path, env: dict[str, str]) -> float:
    done = subprocess.run([PY, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip()[-400:])
    return float(done.stdout.strip().splitlines()[-1])


def _whole(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    import time

    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip()[-400:])
    return 1000 * (time.perf_counter() - start)


def measure(repeat: int, scratch: Path) -> dict[str, dict[str, float]]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    env["CHRONUM_CACHE_DIR"] = str(scratch / "cache")
    (scratch / "plain_events.py").write_text(dataclass_events_module(), encoding="utf-8")
    wl.write_noop_module(scratch)
    flow = wl.write_flow(scratch, "w0", wl.one_step())
    timed_import = textwrap.dedent("""\
        {prelude}import time
        t = time.perf_counter()
        import {module}
        print(1000 * (time.perf_counter() - t))
        """)
    events = {
        "chosen": timed_import.format(prelude=PRELUDE, module="chronum.eventbus"),
        "plain": timed_import.format(prelude=PRELUDE, module="plain_events"),
    }
    run = ["run", str(flow), "-q", "--db", str(scratch / "w0.db")]
    exits = {
        "chosen": [PY, "-c", f"import sys; sys.argv = ['chronum', *{run!r}]\n"
                   "from chronum.cli import console; console()"],
        "plain": [PY, "-c", f"import sys; from chronum.cli import main; sys.exit(main({run!r}))"],
    }
    samples: dict[str, dict[str, list[float]]] = {
        "events": {"chosen": [], "plain": []}, "exit": {"chosen": [], "plain": []}}
    for form in ("chosen", "plain"):  # warm up: bytecode caches, the flow cache, the database
        _run(events[form], scratch, env)
        _whole(exits[form], scratch, env)
    for _ in range(repeat):  # interleaved, so drift hits both forms alike
        for form in ("chosen", "plain"):
            samples["events"][form].append(_run(events[form], scratch, env))
            samples["exit"][form].append(_whole(exits[form], scratch, env))
    # The workload as chronum runs it: the chosen forms (a share of a slower, plain W0 would
    # understate what each construct saves of what users wait for).
    w0 = statistics.median(samples["exit"]["chosen"])
    report = {}
    for name, forms in samples.items():
        chosen, plain = statistics.median(forms["chosen"]), statistics.median(forms["plain"])
        saved = plain - chosen
        report[name] = {"chosen_ms": chosen, "plain_ms": plain, "saved_ms": saved,
                        "w0_ms": w0, "share_of_w0": saved / w0}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="measured runs per form")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="chronum-choices-") as scratch:
        try:
            report = measure(args.repeat, Path(scratch))
        except RuntimeError as exc:
            print(f"choices: a measured command failed: {exc}", file=sys.stderr)
            return 1
    print(f"{'choice':8} {'chosen':>9} {'plain':>9} {'saved':>9} {'of W0':>7}  verdict")
    for name, r in report.items():
        verdict = "keep" if r["share_of_w0"] >= KEEP_AT else "use the plain form"
        print(f"{name:8} {r['chosen_ms']:7.1f}ms {r['plain_ms']:7.1f}ms "
              f"{r['saved_ms']:7.1f}ms {100 * r['share_of_w0']:6.1f}%  {verdict}")
    print(f"medians of {args.repeat}, interleaved; W0 as chronum runs it "
          f"{report['exit']['w0_ms']:.1f} ms; a construct is kept while it saves at least "
          f"{100 * KEEP_AT:.0f} % of W0")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
