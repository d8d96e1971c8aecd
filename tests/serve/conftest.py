"""A real `chronum serve` in a subprocess over a real store, and real `chronum run`s beside it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TOKEN = "test-token-5f1c2a9b"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Served:
    """`chronum serve --db DB --port PORT --token TOKEN`, stopped by its pid with SIGTERM."""

    def __init__(self, folder: Path, token: str = TOKEN) -> None:
        self.folder = folder
        self.db = folder / "state" / "runs.db"
        self.token = token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "CHRONUM_DB": str(self.db), "PYTHONUNBUFFERED": "1"}
        self.env.pop("CHRONUM_SERVE_TOKEN", None)
        self.env.pop("CHRONUM_SUBSCRIBERS", None)
        self.log = (folder / "serve.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chronum", "serve", "--db", str(self.db), "--port",
             str(self.port), "--token", token], cwd=folder, env=self.env, stdout=self.log,
            stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"chronum serve exited: {self.output()}")
            try:
                self.get("/api/runs")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        raise AssertionError(f"chronum serve did not answer: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        return (self.folder / "serve.log").read_text()

    def request(self, path: str, *, token: str | None = None, method: str = "GET",
                body: Any = None, headers: dict[str, str] | None = None
                ) -> tuple[int, dict[str, str], bytes]:
        given = self.token if token is None else token
        all_headers = {"Authorization": f"Bearer {given}"} if given else {}
        all_headers.update(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def get(self, path: str, **kw: Any) -> Any:
        status, _, body = self.request(path, **kw)
        assert status == 200, (status, body[:500])
        return json.loads(body)

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        status, _, raw = self.request(path, method="POST", body=body)
        return status, json.loads(raw)

    def run(self, flow: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "chronum", "run", str(flow), *args],
                              cwd=self.folder, env={**self.env, **(env or {})}, text=True,
                              capture_output=True, timeout=timeout)

    def popen(self, flow: Path, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "chronum", "run", str(flow), *args],
                                cwd=self.folder, env={**self.env, **(env or {})}, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    def wait_for(self, predicate: Any, timeout: float = 30, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what or predicate}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[-1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False
