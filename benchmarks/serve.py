"""`chronum serve`'s figures (issue 15): page and API times on a big store, and what watching,
following and tracing a run cost the runner.

    python benchmarks/serve.py [--quick] [--repeat N] [--only pages,w1,instructions]

- **pages**: a store of 10,000 runs and 1,000,000 steps (one run of 1,000 steps among runs of
  100), made with plain SQL; a real `chronum serve` process; each API call the pages make,
  timed as the whole HTTP round trip on 127.0.0.1 (an upper bound of the server's time),
  median of 15 after a warm-up.
- **w1**: W1 (1,000 in-process no-ops + a join) as whole `chronum run` processes, interleaved:
  alone; with `chronum serve` following the store; with 50 WebSocket clients watching (each
  must receive every event the store recorded, checked per run); with
  `CHRONUM_SUBSCRIBERS=otel` sending to an OTLP/HTTP receiver on 127.0.0.1. Each run is
  measured as wall time and as CPU time (user + system, from ``os.wait4``: the runner and the
  processes it waited for). Medians and the ratios to the run alone. The budgets are judged on
  the CPU ratio: this machine is shared, and other work (here: the server and the 50 clients,
  on two cores) stretches a run's wall time without the runner doing any more work. Also: the
  store held open by an idle connection, so closing the runner's connection does not
  checkpoint the log, as with a server.
- **instructions** (only when named in ``--only``): the instructions one W1 executes under
  valgrind's callgrind, which no other work on the machine changes: alone, with the store held
  open by an idle connection, with ``chronum serve`` following it; each on its own copy of one
  store, the three at once. Under callgrind the run is some 50 times slower, so the follower
  polls some 50 times as often per step: any work its reads make for the runner is magnified.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workloads as wl  # noqa: E402

PY = sys.executable
TOKEN = "bench-token-0123456789"


def _port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, db: Path, folder: Path) -> None:
        self.port = _port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "CHRONUM_SUBSCRIBERS": ""}
        self.proc = subprocess.Popen([PY, "-m", "chronum", "serve", "--db", str(db), "--port",
                                      str(self.port), "--token", TOKEN], cwd=folder, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.get("/api/runs?limit=1")
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit("chronum serve did not start") from None
                time.sleep(0.1)

    def get(self, path: str) -> bytes:
        request = urllib.request.Request(self.url + path,
                                         headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=120) as response:
            return bytes(response.read())

    def timed(self, path: str, n: int) -> float:
        self.get(path)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            self.get(path)
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1000

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


# -- pages ------------------------------------------------------------------------------------

STATES = ("succeeded", "succeeded", "succeeded", "failed", "cancelled")


def build_store(db: Path, runs: int, steps: int, big: int) -> str:
    """``runs`` runs of ``steps`` steps (one attempt each) over 10 flows, one of ``big``
    steps; returns the big run's id."""
    from chronum.store import Store

    Store(db).close()  # the schema, every migration
    conn = sqlite3.connect(db)
    rng = random.Random(15)
    t0 = time.time() - runs * 60
    big_id = f"big{0:09d}"
    conn.execute("BEGIN")
    for r in range(runs):
        rid = big_id if r == runs // 2 else f"r{r:011d}"
        n = big if rid == big_id else steps
        start = t0 + r * 60
        status = rng.choice(STATES)
        flow = f"flow{r % 10}"
        conn.execute("INSERT INTO runs (run_id, flow, status, started_at, finished_at, params, "
                     "n_steps) VALUES (?, ?, ?, ?, ?, '{}', ?)",
                     (rid, flow, status, start, start + 30 + rng.random() * 30, n))
        rows, tries = [], []
        for i in range(n):
            s = start + i * 0.2
            e = s + rng.random() * 0.5
            st = "failed" if status == "failed" and i == n - 1 else "succeeded"
            rows.append((rid, f"step{i}", i, st, 1, 0, s, e))
            tries.append((rid, f"step{i}", 1, st, 0, s, e))
        conn.executemany("INSERT INTO steps (run_id, step, position, status, attempts, "
                         "exit_code, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         rows)
        conn.executemany("INSERT INTO attempts (run_id, step, attempt, status, exit_code, "
                         "started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?)", tries)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return big_id


def pages(folder: Path, quick: bool) -> list[tuple[str, float, float | None]]:
    db = folder / "big" / "chronum.db"
    db.parent.mkdir()
    runs = 1_000 if quick else 10_000
    t0 = time.perf_counter()
    big = build_store(db, runs, 100, 1_000)
    print(f"  built {runs:,} runs / {runs * 100 - 100 + 1000:,} steps in "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    server = Server(db, folder)
    try:
        n = 15
        rows: list[tuple[str, float, float | None]] = [
            ("/api/runs (first page of 50)", server.timed("/api/runs", n), 200),
            ("/api/runs?flow=flow3", server.timed("/api/runs?flow=flow3", n), 200),
            ("/api/runs?status=failed", server.timed("/api/runs?status=failed", n), 200),
            ("/api/runs?offset=5000", server.timed("/api/runs?offset=5000", n), 200),
            ("/api/flows (the runs page's cards)", server.timed("/api/flows", n), 200),
            ("/api/flows/flow3 (a flow page)", server.timed("/api/flows/flow3", n), None),
            (f"/api/runs/{big} (1,000 steps)", server.timed(f"/api/runs/{big}", n), 300),
            ("its /timeline (1,000 steps)", server.timed(f"/api/runs/{big}/timeline", n), 300),
        ]
        t0 = time.perf_counter()
        server.get(f"/api/runs/{big}/graph")
        first = (time.perf_counter() - t0) * 1000
        rows.append(("its /graph, laid out by dot (first time)", first, None))
        rows.append(("its /graph again (laid out before)",
                     server.timed(f"/api/runs/{big}/graph", n), 300))
        t0 = time.perf_counter()
        server.get("/metrics")
        rows.append(("/metrics, first scrape", (time.perf_counter() - t0) * 1000, None))
        rows.append(("/metrics, next scrapes", server.timed("/metrics", 5), None))
    finally:
        server.stop()
    return rows


# -- W1 watched -------------------------------------------------------------------------------

class Watchers:
    """``n`` WebSocket clients in a thread of their own, counting events per run."""

    def __init__(self, port: int, n: int) -> None:
        self.port, self.n = port, n
        self.counts: list[Counter[str]] = [Counter() for _ in range(n)]
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.main(),),
                                       daemon=True)
        self.stop = asyncio.Event()
        self.thread.start()
        if not self.ready.wait(60):
            raise SystemExit("the WebSocket clients did not connect")

    async def client(self, i: int, opened: list[int]) -> None:
        import websockets

        async with websockets.connect(
                f"ws://127.0.0.1:{self.port}/ws/events", max_size=None,
                additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            opened.append(i)
            if len(opened) == self.n:
                self.ready.set()
            async for message in ws:
                for line in message.splitlines():
                    self.counts[i][json.loads(line)["run_id"]] += 1

    async def main(self) -> None:
        opened: list[int] = []
        tasks = [asyncio.ensure_future(self.client(i, opened)) for i in range(self.n)]
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        for task in asyncio.all_tasks(self.loop):
            self.loop.call_soon_threadsafe(task.cancel)
        self.thread.join(10)


class Receiver:
    """An OTLP/HTTP receiver that accepts every export (the spans are not decoded)."""

    def __init__(self) -> None:
        self.posts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = _port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def w1(folder: Path, quick: bool, repeat: int) -> list[tuple[str, float, float | None]]:
    work = folder / "w1"
    work.mkdir()
    wl.write_noop_module(work)
    flow = wl.write_flow(work, "w1", wl.fan_in(200 if quick else 1_000))
    db = work / "chronum.db"
    # compiled modules kept, as an installed Chronum has them (see benchmarks/otel.py)
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    base.update(CHRONUM_SUBSCRIBERS="", PYTHONPYCACHEPREFIX=str(work / "pycache"))
    receiver = Receiver()
    otel = {**base, "CHRONUM_SUBSCRIBERS": "otel",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}"}

    times: dict[str, list[float]] = {"alone": [], "held": [], "followed": [], "watched": [],
                                     "otel": []}
    cpus: dict[str, list[float]] = {mode: [] for mode in times}

    def run(env: dict[str, str], mode: str | None = None) -> None:
        t0 = time.perf_counter()
        proc = subprocess.Popen([PY, "-m", "chronum", "run", str(flow), "--db", str(db), "-q"],
                                cwd=work, env=env, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"chronum run exited with {proc.returncode}")
        if mode is not None:
            times[mode].append(wall)
            cpus[mode].append(usage.ru_utime + usage.ru_stime)

    run(base)  # warm-up: the flow cache, the page cache
    stored_total = received = 0
    for _ in range(repeat):  # the modes interleaved, so the machine's load hits each alike
        run(base, "alone")
        run(otel, "otel")
        # The store held open by a connection that only read once: the runner's connection is
        # then not the last one, so closing it does not checkpoint the log, as with a server.
        held = sqlite3.connect(db)
        held.execute("SELECT COUNT(*) FROM runs").fetchall()
        run(base, "held")
        held.close()
        server = Server(db, folder)
        watchers: Watchers | None = None
        try:
            run(base, "followed")
            watchers = Watchers(server.port, 50)
            run(base, "watched")
            rid, n = sqlite3.connect(db).execute(
                "SELECT run_id, n FROM (SELECT run_id, COUNT(*) AS n, MAX(rowid) AS last "
                "FROM events GROUP BY run_id) ORDER BY last DESC LIMIT 1").fetchone()
            deadline = time.monotonic() + 120
            while any(c[rid] != n for c in watchers.counts) and time.monotonic() < deadline:
                time.sleep(0.05)  # until every client has every event of the watched run
            missing = [i for i, c in enumerate(watchers.counts) if c[rid] != n]
            if missing or any(set(c) != {rid} for c in watchers.counts):
                raise SystemExit(f"WebSocket clients {missing} missed events of run {rid}")
            stored_total += n * 50
            received += sum(c[rid] for c in watchers.counts)
        finally:
            if watchers is not None:
                watchers.close()
            server.stop()
    print(f"  50 clients x {repeat} watched runs: {received:,} of {stored_total:,} events "
          "received", file=sys.stderr)
    if not receiver.posts:
        raise SystemExit("the otel subscriber sent nothing")
    alone, alone_cpu = statistics.median(times["alone"]), statistics.median(cpus["alone"])
    rows: list[tuple[str, float, float | None]] = [("W1 alone, wall (s)", alone, None),
                                                   ("W1 alone, CPU (s)", alone_cpu, None)]
    modes: tuple[tuple[str, str, float | None], ...] = (
        ("held", "W1 with the store held open, idle", None),
        ("followed", "W1 with chronum serve following the store", 1.05),
        ("watched", "W1 with 50 WebSocket clients watching", 1.05),
        ("otel", "W1 with CHRONUM_SUBSCRIBERS=otel", 1.10))
    for mode, label, budget in modes:
        rows.append((f"{label}, CPU (x alone)", statistics.median(cpus[mode]) / alone_cpu,
                     budget))
        rows.append((f"{label}, wall (x alone)", statistics.median(times[mode]) / alone, None))
    held = statistics.median(cpus["held"])
    for mode, label in (("followed", "following"), ("watched", "50 clients watching")):
        rows.append((f"W1 with {label}, CPU (x held open, idle)",
                     statistics.median(cpus[mode]) / held, None))
    rows.append(("1-minute load average at the end", os.getloadavg()[0], None))
    return rows


def instructions_w1(folder: Path) -> list[tuple[str, float, float | None]]:
    import re
    import shutil

    work = folder / "instructions"
    work.mkdir()
    wl.write_noop_module(work)
    flow = wl.write_flow(work, "w1", wl.fan_in(1_000))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(CHRONUM_SUBSCRIBERS="", PYTHONPYCACHEPREFIX=str(work / "pycache"))
    argv = [PY, "-m", "chronum", "run", str(flow), "-q", "--db"]
    subprocess.run([*argv, str(work / "seed.db")], cwd=work, env=env, check=True,
                   stdout=subprocess.DEVNULL)  # a store with a run in it; compiled modules
    modes = ("alone", "held", "followed")
    for mode in modes:
        shutil.copy(work / "seed.db", work / f"{mode}.db")
    held = sqlite3.connect(work / "held.db")
    held.execute("SELECT COUNT(*) FROM runs").fetchall()
    server = Server(work / "followed.db", folder)
    try:
        procs = {mode: subprocess.Popen(["valgrind", "--tool=callgrind",
                                         "--callgrind-out-file=/dev/null", *argv,
                                         str(work / f"{mode}.db")], cwd=work, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True) for mode in modes}
        counts = {mode: int(re.findall(r"Collected : (\d+)", proc.communicate()[1])[-1])
                  for mode, proc in procs.items()}
    finally:
        server.stop()
        held.close()
    return [("W1 alone, instructions (M)", counts["alone"] / 1e6, None),
            ("W1 with the store held open, idle (x alone)", counts["held"] / counts["alone"],
             None),
            ("W1 with chronum serve following (x alone)", counts["followed"] / counts["alone"],
             1.05)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--only", default="pages,w1")
    args = parser.parse_args()
    rows: list[tuple[str, float, float | None]] = []
    with tempfile.TemporaryDirectory(prefix="chronum-serve-bench-") as tmp:
        folder = Path(tmp)
        if "pages" in args.only:
            print("pages ...", file=sys.stderr)
            rows += [(f"{name} (ms)", value, budget)
                     for name, value, budget in pages(folder, args.quick)]
        if "w1" in args.only:
            print("w1 ...", file=sys.stderr)
            rows += w1(folder, args.quick, args.repeat)
        if "instructions" in args.only:
            print("instructions ...", file=sys.stderr)
            rows += instructions_w1(folder)
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>9}  budget")
    for name, value, budget in rows:
        verdict = "" if budget is None else (
            f"<= {budget:g}  {'ok' if value <= budget else 'OVER'}")
        print(f"{name:<{width}}  {value:>9.3f}  {verdict}")


if __name__ == "__main__":
    main()
