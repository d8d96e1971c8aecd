"""A separately started ``dask scheduler`` + ``dask worker`` on 127.0.0.1, once per session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("distributed")


def _start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    dask = Path(sys.executable).with_name("dask")
    with open(log, "wb") as out:
        return subprocess.Popen([str(dask), *argv], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def scheduler_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a real scheduler with two single-threaded worker processes."""
    work = tmp_path_factory.mktemp("dask")
    file = work / "scheduler.json"
    scheduler = _start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                        "--scheduler-file", str(file)], work / "scheduler.log")
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not file.exists() or not file.read_text().strip():
            assert scheduler.poll() is None, (work / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the dask scheduler did not start"
            time.sleep(0.1)
        address = json.loads(file.read_text())["address"]
        worker = _start(["worker", "--scheduler-file", str(file), "--nworkers", "2",
                         "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                        work / "worker.log")
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        if worker is not None:
            _stop(worker)
        _stop(scheduler)
