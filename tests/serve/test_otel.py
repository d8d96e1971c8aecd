"""CHRONUM_SUBSCRIBERS=otel: a `chronum run` sends one trace over OTLP/HTTP to a receiver this
test starts on 127.0.0.1, decoded with opentelemetry-proto."""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .conftest import free_port


def _hex_ids_to_base64(node: Any) -> None:
    """OTLP's JSON writes ids in hex; protobuf's JSON parser reads bytes as base64."""
    if isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId"):
                node[key] = base64.b64encode(bytes.fromhex(value)).decode()
            else:
                _hex_ids_to_base64(value)


class Receiver:
    """An OTLP/HTTP receiver: each POST decoded with opentelemetry-proto (protobuf, or JSON
    through protobuf's own JSON parser), kept with when it came and its headers."""

    def __init__(self, answers: tuple[int, ...] = (), http10: bool = False,
                 chunked: bool = False, tls: tuple[Path, Path] | None = None) -> None:
        from google.protobuf import json_format
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        self.spans: list[Any] = []
        self.resources: list[Any] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.requests: list[tuple[float, list[Any]]] = []  # (when, its spans)
        self.answers = list(answers)  # statuses to answer first, then 200
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # keep-alive, as collectors answer; or one request per connection
            protocol_version = "HTTP/1.0" if http10 else "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.answers:
                    receiver.refused += 1
                    status = receiver.answers.pop(0)
                    message = f"status {status}".encode()
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(message)))
                    self.end_headers()
                    self.wfile.write(message)
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                if self.headers["Content-Type"] == "application/json":
                    data = json.loads(body)
                    _hex_ids_to_base64(data)
                    json_format.ParseDict(data, request)
                else:
                    assert self.headers["Content-Type"] == "application/x-protobuf"
                    request.ParseFromString(body)
                receiver.paths.append(self.path)
                receiver.headers.append(dict(self.headers))
                spans = []
                for resource_spans in request.resource_spans:
                    receiver.resources.append(resource_spans.resource)
                    for scope in resource_spans.scope_spans:
                        assert scope.scope.name == "chronum"
                        spans.extend(scope.spans)
                receiver.spans.extend(spans)
                receiver.requests.append((time.time(), spans))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                if chunked:  # a partial_success-shaped body, in two chunks
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
                else:
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        if tls is not None:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
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


FLOW = """
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
"""


def _run(tmp_path: Path, flow: str, **env: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "f.yaml"
    path.write_text(flow)
    env = {**os.environ, "CHRONUM_DB": str(tmp_path / "c.db"), "CHRONUM_SUBSCRIBERS": "otel",
           **env}
    return subprocess.run([sys.executable, "-m", "chronum", "run", str(path)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("settings", [
    {},
    {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"},
    {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
     "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2"},
], ids=["protobuf", "json-gzip", "protobuf-gzip-batches-of-2"])
def test_a_cli_run_becomes_one_trace(receiver: Receiver, tmp_path: Path,
                                     settings: dict[str, str]):
    proc = _run(tmp_path, FLOW, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.port}",
                OTEL_SERVICE_NAME="chronum-test",
                OTEL_RESOURCE_ATTRIBUTES="deployment.environment=ci,team=data%20eng",
                OTEL_EXPORTER_OTLP_HEADERS="x-api-key=k%3D1,x-tenant=t", **settings)
    assert proc.returncode == 1, proc.stderr
    assert "warning" not in proc.stderr
    # flushed before the process exited: everything is here already
    assert set(receiver.paths) == {"/v1/traces"}
    for headers in receiver.headers:
        assert headers["x-api-key"] == "k=1" and headers["x-tenant"] == "t"
        assert ("Content-Encoding" in headers) == ("gzip" in str(settings))
    spans = receiver.spans
    assert len(spans) == 1 + 4 + 4  # the run, 4 steps, 4 attempts (never did not start)
    if "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" in settings:
        assert [len(r[1]) for r in receiver.requests] == [2, 2, 2, 2, 1]
    assert len({s.trace_id for s in spans}) == 1 and len(spans[0].trace_id) == 16
    assert len({s.span_id for s in spans}) == len(spans)
    by_name = {s.name: s for s in spans}
    root = by_name["run traced"]
    assert root.parent_span_id == b""
    steps = {s.name: s for s in spans if s.parent_span_id == root.span_id}
    assert set(steps) == {"step a", "step flaky", "step bad", "step never"}
    flaky = steps["step flaky"]
    tries = sorted((s for s in spans if s.parent_span_id == flaky.span_id), key=lambda s: s.name)
    assert [s.name for s in tries] == ["attempt 1", "attempt 2"]
    first, second = (_attrs(s) for s in tries)
    assert first["chronum.exit_code"] == 3 and tries[0].status.code == 2  # ERROR
    assert first["chronum.attempt"] == 1 and second["chronum.attempt"] == 2
    assert first["chronum.executor"] == "shell" and first["chronum.step"] == "flaky"
    assert second["chronum.exit_code"] == 0 and tries[1].status.code == 1
    assert tries[0].end_time_unix_nano <= tries[1].start_time_unix_nano
    [wait] = flaky.events
    assert wait.name == "retry wait"
    assert tries[0].end_time_unix_nano <= wait.time_unix_nano <= tries[1].start_time_unix_nano
    waited = _attrs(wait)
    assert waited["chronum.attempt"] == 1 and waited["chronum.delay_s"] > 0
    assert flaky.status.code == 1  # OK
    bad = _attrs(steps["step bad"])
    assert bad["chronum.flow"] == "traced" and bad["chronum.step"] == "bad"
    assert bad["chronum.status"] == "failed" and bad["chronum.exit_code"] == 4
    assert bad["chronum.cache"] == "ran" and "exit" in bad["chronum.reason"]
    assert steps["step bad"].status.code == 2
    assert steps["step bad"].status.message == bad["chronum.reason"]
    assert _attrs(steps["step never"])["chronum.status"] == "upstream_failed"
    assert steps["step never"].status.code == 0  # UNSET: skipped is neither
    assert _attrs(root)["chronum.run_id"] == _attrs(steps["step a"])["chronum.run_id"]
    assert _attrs(root)["chronum.status"] == "failed" and root.status.code == 2
    assert {s.kind for s in spans} == {1}  # INTERNAL
    service = {kv.key: kv.value.string_value for r in receiver.resources for kv in r.attributes}
    assert service["service.name"] == "chronum-test"
    assert service["deployment.environment"] == "ci" and service["team"] == "data eng"
    for span in spans:  # children inside their parents, in time
        assert span.start_time_unix_nano <= span.end_time_unix_nano
        parent = next((p for p in spans if p.span_id == span.parent_span_id), None)
        if parent is not None:
            assert parent.start_time_unix_nano <= span.start_time_unix_nano
            assert span.end_time_unix_nano <= parent.end_time_unix_nano


def test_the_traces_endpoint_is_used_as_given(receiver: Receiver, tmp_path: Path):
    proc = _run(tmp_path, "name: f\nsteps:\n  - name: a\n    run: 'true'\n",
                OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",  # not this one
                OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{receiver.port}/otlp/t")
    assert proc.returncode == 0, proc.stderr
    assert receiver.paths == ["/otlp/t"]
    assert sorted(s.name for s in receiver.spans) == ["attempt 1", "run f", "step a"]
    service = {kv.key: kv.value.string_value for r in receiver.resources for kv in r.attributes}
    assert service["service.name"] == "chronum"


def test_a_long_run_sends_spans_while_it_runs(receiver: Receiver, tmp_path: Path):
    flow = ("name: slow\nsteps:\n  - name: a\n    run: 'true'\n"
            "  - name: b\n    run: sleep 2\n    needs: [a]\n")
    proc = _run(tmp_path, flow, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.port}",
                OTEL_BSP_SCHEDULE_DELAY="100")
    assert proc.returncode == 0, proc.stderr
    early = receiver.requests[0][1]
    assert sorted(s.name for s in early) == ["attempt 1", "step a"]  # before b ended
    b = next(s for s in receiver.spans if s.name == "step b")
    assert receiver.requests[0][0] * 1e9 < b.end_time_unix_nano
    assert len(receiver.spans) == 5


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "use http/protobuf or http/json"),
    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/thrift", "is not supported"),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "use gzip or none"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318", "is not an http:// or https:// URL"),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x/", "is not an http:// or https:// URL"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "novalue", "is not key=value"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon", "is not a number"),
])
def test_settings_it_cannot_honour_are_a_one_line_error(tmp_path: Path, variable: str,
                                                        value: str, message: str):
    proc = _run(tmp_path, "name: f\nsteps:\n  - name: a\n    run: touch ran\n",
                **{variable: value})
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and value in proc.stderr
    if "ENDPOINT" not in variable:
        assert variable in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ran").exists()  # refused before the run started


def test_a_collector_that_is_not_there_is_a_warning_not_a_failure(tmp_path: Path):
    port = free_port()  # nothing listens
    proc = _run(tmp_path, "name: f\nsteps:\n  - name: a\n    run: 'true'\n",
                OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
                OTEL_EXPORTER_OTLP_TIMEOUT="3000")
    assert proc.returncode == 0, proc.stderr
    assert "warning: the OpenTelemetry exporter could not send spans" in proc.stderr
    assert f"127.0.0.1:{port}" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(("answers", "http10", "chunked"), [
    ((503, 429), False, False),  # retried
    ((), True, False),  # a new connection per request
    ((), False, True),  # a chunked answer, the connection kept
], ids=["retried", "http10", "chunked"])
def test_the_collector_answers_it_copes_with(tmp_path: Path, answers: tuple[int, ...],
                                             http10: bool, chunked: bool):
    receiver = Receiver(answers, http10=http10, chunked=chunked)
    try:
        proc = _run(tmp_path, FLOW,
                    OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.port}",
                    OTEL_BSP_MAX_EXPORT_BATCH_SIZE="3")
    finally:
        receiver.close()
    assert proc.returncode == 1, proc.stderr
    assert "warning" not in proc.stderr
    assert receiver.refused == len(answers)
    assert len(receiver.requests) == 3 and len(receiver.spans) == 9
    assert len({s.span_id for s in receiver.spans}) == 9


def test_a_refused_export_is_one_warning(tmp_path: Path):
    receiver = Receiver((400, 400, 400))
    try:
        proc = _run(tmp_path, "name: f\nsteps:\n  - name: a\n    run: 'true'\n",
                    OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.port}")
    finally:
        receiver.close()
    assert proc.returncode == 0, proc.stderr
    assert receiver.refused == 1  # a 400 is not retried
    [warning] = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert "could not send spans" in warning and "HTTP 400" in warning
    assert "3 spans not sent" in warning


def test_the_built_in_is_found_as_importlib_metadata_finds_it():
    from importlib.metadata import entry_points

    from chronum import subscribers

    standard = {ep.name: ep.value for ep in entry_points(group=subscribers.GROUP)}
    own = subscribers._own_entry_points()
    assert own is not None and own["otel"] == standard["otel"]
    assert subscribers._registered(["otel"]) == own  # found without the scan
    assert subscribers._load(own["otel"]).__module__ == "chronum.exporters.otel"
    text = "[console_scripts]\notel = x:y\n\n[chronum.subscribers]\n# a note\na = m.n:f.g\n"
    assert subscribers._group(text) == {"a": "m.n:f.g"}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_an_https_collector_with_its_own_certificate(tmp_path: Path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    receiver = Receiver(tls=(cert, key))
    try:
        url = f"https://127.0.0.1:{receiver.port}"
        proc = _run(tmp_path, "name: f\nsteps:\n  - name: a\n    run: 'true'\n",
                    OTEL_EXPORTER_OTLP_ENDPOINT=url, OTEL_EXPORTER_OTLP_CERTIFICATE=str(cert))
        assert proc.returncode == 0, proc.stderr
        assert "warning" not in proc.stderr
        assert sorted(s.name for s in receiver.spans) == ["attempt 1", "run f", "step a"]
        # without the certificate the collector is not trusted: a warning, not a failure
        proc = _run(tmp_path, "name: f\nsteps:\n  - name: a\n    run: 'true'\n",
                    OTEL_EXPORTER_OTLP_ENDPOINT=url)
        assert proc.returncode == 0, proc.stderr
        assert "could not send spans" in proc.stderr and "CERTIFICATE_VERIFY_FAILED" in proc.stderr
        assert len(receiver.spans) == 3
    finally:
        receiver.close()


def test_otel_sdk_disabled_sends_nothing(receiver: Receiver, tmp_path: Path):
    proc = _run(tmp_path, "name: f\nsteps:\n  - name: a\n    run: 'true'\n",
                OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.port}",
                OTEL_SDK_DISABLED="true")
    assert proc.returncode == 0, proc.stderr
    assert receiver.spans == []


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
