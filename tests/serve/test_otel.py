"""CHRONUM_SUBSCRIBERS=otel: a `chronum run` sends one trace over OTLP/HTTP to a receiver this
test starts on 127.0.0.1, decoded with opentelemetry-proto."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .conftest import free_port


class Receiver:
    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        self.spans: list[Any] = []
        self.resources: list[Any] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.paths.append(self.path)
                for resource_spans in request.resource_spans:
                    receiver.resources.append(resource_spans.resource)
                    for scope in resource_spans.scope_spans:
                        receiver.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


def _attrs(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def test_a_cli_run_becomes_one_trace(receiver: Receiver, tmp_path: Path):
    flow = tmp_path / "f.yaml"
    flow.write_text("""
name: traced
steps:
  - name: a
    run: echo a
  - name: flaky
    run: 'if [ -e done ]; then exit 0; fi; touch done; exit 3'
    needs: [a]
    retry: {limit: 2, backoff: {base: 0.05}}
  - name: bad
    run: 'exit 4'
    needs: [a]
  - name: never
    run: 'true'
    needs: [bad]
""")
    env = {**os.environ, "CHRONUM_DB": str(tmp_path / "c.db"), "CHRONUM_SUBSCRIBERS": "otel",
           "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
           "OTEL_SERVICE_NAME": "chronum-test"}
    proc = subprocess.run([sys.executable, "-m", "chronum", "run", str(flow)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "warning" not in proc.stderr
    # flushed before the process exited: everything is here already
    assert set(receiver.paths) == {"/v1/traces"}
    spans = receiver.spans
    assert len({s.trace_id for s in spans}) == 1
    by_name = {s.name: s for s in spans}
    root = by_name["run traced"]
    assert root.parent_span_id == b""
    steps = {s.name: s for s in spans if s.parent_span_id == root.span_id}
    assert set(steps) == {"step a", "step flaky", "step bad", "step never"}
    flaky = steps["step flaky"]
    tries = [s for s in spans if s.parent_span_id == flaky.span_id]
    assert sorted(s.name for s in tries) == ["attempt 1", "attempt 2"]
    first = next(s for s in tries if s.name == "attempt 1")
    assert _attrs(first)["chronum.exit_code"] == 3 and first.status.code == 2  # ERROR
    assert [e.name for e in flaky.events] == ["retry wait"]
    assert flaky.status.code == 1  # OK
    bad = _attrs(steps["step bad"])
    assert bad["chronum.flow"] == "traced" and bad["chronum.step"] == "bad"
    assert bad["chronum.status"] == "failed" and bad["chronum.exit_code"] == 4
    assert bad["chronum.cache"] == "ran" and "exit" in bad["chronum.reason"]
    assert steps["step bad"].status.code == 2
    assert _attrs(steps["step never"])["chronum.status"] == "upstream_failed"
    assert _attrs(root)["chronum.run_id"] == _attrs(steps["step a"])["chronum.run_id"]
    assert root.status.code == 2
    service = {kv.key: kv.value.string_value for r in receiver.resources for kv in r.attributes}
    assert service["service.name"] == "chronum-test"
    for span in spans:  # children inside their parents, in time
        assert span.start_time_unix_nano <= span.end_time_unix_nano


def test_an_unknown_subscriber_is_a_one_line_error(tmp_path: Path):
    flow = tmp_path / "f.yaml"
    flow.write_text("name: f\nsteps:\n  - name: a\n    run: 'true'\n")
    env = {**os.environ, "CHRONUM_DB": str(tmp_path / "c.db")}
    proc = subprocess.run([sys.executable, "-m", "chronum", "run", str(flow), "--subscriber",
                           "nope"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "no event subscriber 'nope'" in proc.stderr and "otel" in proc.stderr
    assert "Traceback" not in proc.stderr
