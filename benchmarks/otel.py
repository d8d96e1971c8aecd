"""What the ``otel`` subscriber adds to W1 (issue 15's budget: at most 10 %).

    python benchmarks/otel.py [--repeat N] [--steps N] [--profile]

W1 (1,000 in-process no-ops + a join) as whole ``chronum run`` processes, interleaved: alone,
then with ``CHRONUM_SUBSCRIBERS=otel`` sending to an OTLP/HTTP receiver on 127.0.0.1 (a thread
of this process that reads each request and counts the spans with opentelemetry-proto, after
the runs). Each run is measured twice: wall time, and CPU time (user + system) of the run's
process and every process it waited for, from ``os.wait4``. The machine is shared with other
work, so the CPU ratio is the one to judge: load stretches wall times but not the CPU a run
needs. Medians, and the ratios to the run alone.

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


def compare(repeat: int, steps: int) -> None:
    with tempfile.TemporaryDirectory(prefix="chronum-otel-bench-") as tmp:
        work = Path(tmp)
        wl.write_noop_module(work)
        flow = wl.write_flow(work, "w1", wl.fan_in(steps))
        receiver = Receiver()
        base = {**os.environ, "CHRONUM_SUBSCRIBERS": "", "CHRONUM_DB": str(work / "c.db")}
        otel = {**base, "CHRONUM_SUBSCRIBERS": "otel",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}"}
        argv = [PY, "-m", "chronum", "run", str(flow), "-q"]
        timed(argv, base, work)  # warm-up: the flow cache, the page cache
        timed(argv, otel, work)
        receiver.bodies.clear()
        walls: dict[str, list[float]] = {"alone": [], "otel": []}
        cpus: dict[str, list[float]] = {"alone": [], "otel": []}
        for i in range(repeat):  # interleaved, the order alternating, so load hits both alike
            for mode in (("alone", "otel") if i % 2 == 0 else ("otel", "alone")):
                wall, cpu = timed(argv, base if mode == "alone" else otel, work)
                walls[mode].append(wall)
                cpus[mode].append(cpu)
        spans = receiver.spans()
        expected = repeat * (1 + 2 * (steps + 1))  # the run, and a step and an attempt each
        if spans != expected:
            raise SystemExit(f"the receiver got {spans} spans, not {expected}")
        load = os.getloadavg()[0]
    print(f"W1 ({steps} no-ops + a join), {repeat} runs each, interleaved; "
          f"{spans:,} spans received; 1-minute load at the end {load:.1f}")
    print(f"{'':24}{'alone':>9}{'otel':>9}{'ratio':>8}")
    for label, data in (("wall, median (s)", walls), ("CPU, median (s)", cpus)):
        a, o = statistics.median(data["alone"]), statistics.median(data["otel"])
        print(f"{label:24}{a:9.3f}{o:9.3f}{o / a:7.3f}x")
    print("budget: <= 1.10x")


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
    args = parser.parse_args()
    if args.profile:
        profile(args.steps)
    else:
        compare(args.repeat, args.steps)


if __name__ == "__main__":
    main()
