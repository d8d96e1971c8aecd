"""What the ``otel`` subscriber adds to W1 (issue 15's budget: at most 10 %).

    python benchmarks/otel.py [--repeat N] [--steps N] [--parts] [--instructions] [--profile]

W1 (1,000 in-process no-ops + a join) as whole ``chronum run`` processes, interleaved: alone,
then with ``CHRONUM_SUBSCRIBERS=otel`` sending to an OTLP/HTTP receiver on 127.0.0.1 (a thread
of this process that reads each request and counts the spans with opentelemetry-proto, after
the runs). Each run is measured twice: wall time, and CPU time (user + system) of the run's
process and every process it waited for, from ``os.wait4``. The machine is shared with other
work, so the CPU ratio is the one to judge: load stretches wall times but not the CPU a run
needs. Medians, and the ratios to the run alone.

``--instructions`` instead counts the instructions one W1 executes under valgrind's callgrind
(alone, with the subscriber loaded but disabled, with it sending), which no other work on the
machine changes; the spans of a run slowed this much are still sent once, at its end.

``--profile`` instead runs one W1 with the subscriber under cProfile (in this process) and
prints where the subscriber's time goes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workloads as wl  # noqa: E402

PY = sys.executable


class Receiver:
    """An OTLP/HTTP receiver on 127.0.0.1 that keeps each request's body."""

    def __init__(self) -> None:
        import socket

        self.bodies: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self) -> int:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        n = 0
        for body in self.bodies:
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            n += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        return n


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one process and the processes it waited for."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv} exited with {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def compiled(env: dict[str, str], folder: Path) -> dict[str, str]:
    """``env`` with compiled modules kept (under ``folder``), as an installed Chronum has them,
    even where the environment says not to write them: compiling every module at each start
    would be counted as the run's own work."""
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(folder / "pycache")}


#: The modes beside ``alone`` that ``--parts`` adds, to split the cost: ``disabled`` loads the
#: subscriber (``OTEL_SDK_DISABLED=true``: found, imported, handed no work), ``no-thread`` is
#: ``otel`` without the thread that sends a long run's spans as it goes.
PARTS = {"disabled": {"OTEL_SDK_DISABLED": "true"}, "no-thread": {"OTEL_BSP_SCHEDULE_DELAY": "0"}}


def compare(repeat: int, steps: int, parts: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="chronum-otel-bench-") as tmp:
        work = Path(tmp)
        wl.write_noop_module(work)
        flow = wl.write_flow(work, "w1", wl.fan_in(steps))
        receiver = Receiver()
        base = compiled({**os.environ, "CHRONUM_SUBSCRIBERS": "", "CHRONUM_DB": str(work / "c.db")},
                        work)
        otel = {**base, "CHRONUM_SUBSCRIBERS": "otel",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}"}
        envs = {"alone": base, "otel": otel}
        if parts:
            envs.update({mode: {**otel, **extra} for mode, extra in PARTS.items()})
        argv = [PY, "-m", "chronum", "run", str(flow), "-q"]
        timed(argv, base, work)  # warm-up: the flow cache, the page cache, compiled modules
        timed(argv, otel, work)
        receiver.bodies.clear()
        walls: dict[str, list[float]] = {mode: [] for mode in envs}
        cpus: dict[str, list[float]] = {mode: [] for mode in envs}
        modes = list(envs)
        for i in range(repeat):  # interleaved, the order turning, so load hits each alike
            for mode in modes[i % len(modes):] + modes[:i % len(modes)]:
                wall, cpu = timed(argv, envs[mode], work)
                walls[mode].append(wall)
                cpus[mode].append(cpu)
        spans = receiver.spans()
        sending = sum(1 for mode in envs if mode != "alone" and mode != "disabled")
        expected = sending * repeat * (1 + 2 * (steps + 1))  # the run, a step and an attempt each
        if spans != expected:
            raise SystemExit(f"the receiver got {spans} spans, not {expected}")
        load = os.getloadavg()[0]
    print(f"W1 ({steps} no-ops + a join), {repeat} runs each, interleaved; "
          f"{spans:,} spans received; 1-minute load at the end {load:.1f}")
    print(f"{'median':18}" + "".join(f"{mode:>11}" for mode in envs))
    for label, data in (("wall (s)", walls), ("CPU (s)", cpus)):
        alone = statistics.median(data["alone"])
        print(f"{label:18}" + "".join(f"{statistics.median(data[m]):11.3f}" for m in envs))
        print(f"{label[:-4] + ' x alone':18}"
              + "".join(f"{statistics.median(data[m]) / alone:10.3f}x" for m in envs))
    print("budget: otel <= 1.10x alone")


def instructions(argv: list[str], env: dict[str, str], cwd: Path) -> int:
    """Instructions one process executes, counted by callgrind."""
    import re

    proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                           *argv], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=True)
    return int(re.findall(r"Collected : (\d+)", proc.stderr)[-1])


def count(steps: int) -> None:
    with tempfile.TemporaryDirectory(prefix="chronum-otel-bench-") as tmp:
        work = Path(tmp)
        wl.write_noop_module(work)
        flow = wl.write_flow(work, "w1", wl.fan_in(steps))
        receiver = Receiver()
        base = compiled({**os.environ, "CHRONUM_SUBSCRIBERS": "", "CHRONUM_DB": str(work / "c.db")},
                        work)
        otel = {**base, "CHRONUM_SUBSCRIBERS": "otel", "OTEL_BSP_SCHEDULE_DELAY": "600000",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}"}
        envs = {"alone": base, "disabled": {**otel, **PARTS["disabled"]}, "otel": otel}
        argv = [PY, "-m", "chronum", "run", str(flow), "-q"]
        for env in envs.values():  # warm-up: the flow cache, compiled modules
            timed(argv, env, work)
        counts = {mode: instructions(argv, env, work) for mode, env in envs.items()}
    print(f"W1 ({steps} no-ops + a join), instructions under callgrind")
    for mode, n in counts.items():
        print(f"{mode:10}{n / 1e6:12,.1f} M{n / counts['alone']:9.3f}x")


def profile(steps: int) -> None:
    import cProfile
    import pstats

    with tempfile.TemporaryDirectory(prefix="chronum-otel-bench-") as tmp:
        work = Path(tmp)
        wl.write_noop_module(work)
        flow = wl.write_flow(work, "w1", wl.fan_in(steps))
        receiver = Receiver()
        os.environ.update(CHRONUM_SUBSCRIBERS="otel", CHRONUM_DB=str(work / "c.db"),
                          OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.port}")
        os.chdir(work)
        sys.path.insert(0, str(work))
        from chronum.cli import main as cli

        cli(["run", str(flow), "-q"])  # warm: imports, the flow cache
        profiler = cProfile.Profile()
        profiler.enable()
        cli(["run", str(flow), "-q"])
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats("otel|http|zlib|socket", 25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--steps", type=int, default=1_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--parts", action="store_true",
                        help="also the modes that split the cost: " + ", ".join(PARTS))
    args = parser.parse_args()
    if args.profile:
        profile(args.steps)
    elif args.instructions:
        count(args.steps)
    else:
        compare(args.repeat, args.steps, args.parts)


if __name__ == "__main__":
    main()
