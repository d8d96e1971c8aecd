"""The ``otel`` event subscriber: each run as an OpenTelemetry trace, sent over OTLP/HTTP.

One trace per run (its root span), a span per step, a child span per attempt. Attributes say
the flow, run id, step, attempt, exit code, reason and cache state; a span's status follows
the step's (failed and cancelled are errors), and the wait before a retry is an event on the
step's span. Configuration is the standard ``OTEL_*`` variables of the OTLP exporter
(:func:`settings` lists those read).

The subscriber speaks OTLP itself rather than through the OpenTelemetry SDK: the SDK, its
OTLP exporter and the HTTP library under it take longer to import than a short run takes, and
its tracer locks, samples and checks each span, while a run's spans are known in full from its
events. So the run's loop only keeps each event (an append); the events become spans, are
encoded (protobuf by hand, or JSON) and POSTed with the standard library, by a thread every
``OTEL_BSP_SCHEDULE_DELAY`` for a long run, and by ``close()`` (called by the session once the
run is recorded) for the rest, so every span is sent before the process exits. No tracer
provider is made, so an application that traces itself keeps its global one, and
``OTEL_TRACES_SAMPLER`` does not apply: every run is traced in full.

Enable with ``CHRONUM_SUBSCRIBERS=otel`` or ``chronum run --subscriber otel``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import struct
import sys
import threading
import time
import urllib.parse
import zlib
from collections import deque
from collections.abc import Mapping
from typing import Any, NamedTuple

from ..errors import UsageError
from ..eventbus import (
    Event,
    RunFinished,
    RunStarted,
    StepCached,
    StepCancelled,
    StepFailed,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepSucceeded,
)

__all__ = ["OtelSubscriber", "Settings", "encode_json", "encode_protobuf", "settings",
           "subscriber"]

logger = logging.getLogger("chronum")

#: The protocols this subscriber speaks (``OTEL_EXPORTER_OTLP_PROTOCOL``); the first is the
#: default, as the specification makes it for OTLP over HTTP.
PROTOCOLS = ("http/protobuf", "http/json")
#: HTTP statuses the specification calls retryable.
RETRYABLE = frozenset({429, 502, 503, 504})
#: Tries per export when the collector is unreachable or says to retry.
TRIES = 3

# Span kinds and status codes of the OTLP protocol.
KIND_INTERNAL = 1
UNSET, OK, ERROR = 0, 1, 2
#: ``Span.flags``: the parent's remoteness is known (it never is remote), and sampled.
FLAGS = 0x100 | 0x01


class Settings(NamedTuple):
    """What the ``OTEL_*`` variables ask for, checked."""

    url: str
    protocol: str
    headers: dict[str, str]
    timeout_s: float
    gzip: bool
    resource: dict[str, Any]
    batch: int
    delay_s: float
    certificate: str | None
    client_certificate: str | None
    client_key: str | None


def _get(environ: Mapping[str, str], name: str) -> tuple[str, str | None]:
    """(variable, value): ``OTEL_EXPORTER_OTLP_TRACES_<name>`` if set, else
    ``OTEL_EXPORTER_OTLP_<name>``."""
    for variable in (f"OTEL_EXPORTER_OTLP_TRACES_{name}", f"OTEL_EXPORTER_OTLP_{name}"):
        value = environ.get(variable, "").strip()
        if value:
            return variable, value
    return f"OTEL_EXPORTER_OTLP_{name}", None


def _pairs(text: str, variable: str) -> dict[str, str]:
    """``key=value,...`` with percent-encoded values (the W3C Baggage form the spec uses)."""
    found: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{variable}: {item.strip()!r} is not key=value; write it as "
                             "key1=value1,key2=value2")
        found[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    return found


def _number(environ: Mapping[str, str], variable: str, default: float) -> float:
    text = environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise UsageError(f"{variable}={text!r} is not a number of 0 or more")
    return value


def settings(environ: Mapping[str, str] = os.environ) -> Settings:
    """The exporter's settings from the standard variables; UsageError for one it cannot honour.

    Read: ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`` (the traces one is the whole URL, the other
    gets ``/v1/traces`` appended; default ``http://localhost:4318``), ``..._PROTOCOL``
    (``http/protobuf`` or ``http/json``; ``grpc`` is refused), ``..._HEADERS``,
    ``..._TIMEOUT`` (milliseconds, as the specification says; default 10 s),
    ``..._COMPRESSION`` (``gzip`` or ``none``), ``..._CERTIFICATE``,
    ``..._CLIENT_CERTIFICATE`` and ``..._CLIENT_KEY``; ``OTEL_SERVICE_NAME`` (default
    ``chronum``), ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` and
    ``OTEL_BSP_SCHEDULE_DELAY``.
    """
    variable, protocol = _get(environ, "PROTOCOL")
    protocol = protocol or PROTOCOLS[0]
    if protocol not in PROTOCOLS:
        raise UsageError(f"{variable}={protocol!r} is not supported by the "
                         f"otel subscriber, which sends OTLP over HTTP: use "
                         f"{' or '.join(PROTOCOLS)} (a collector accepts both on port 4318)")
    url = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if not url:
        base = (environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
                or "http://localhost:4318")
        url = base.rstrip("/") + "/v1/traces"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"the OTLP endpoint {url!r} (OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT) is "
                         "not an http:// or https:// URL; write it as http://HOST:4318")
    variable, compression = _get(environ, "COMPRESSION")
    compression = (compression or "none").lower()
    if compression not in ("gzip", "none"):
        raise UsageError(f"{variable}={compression!r} is not supported: "
                         "use gzip or none")
    timeout_name = _get(environ, "TIMEOUT")[0]
    headers = _pairs(environ.get("OTEL_EXPORTER_OTLP_HEADERS", ""),
                     "OTEL_EXPORTER_OTLP_HEADERS")
    headers.update(_pairs(environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS", ""),
                          "OTEL_EXPORTER_OTLP_TRACES_HEADERS"))
    for key, value in headers.items():
        if not key.isprintable() or not value.isprintable() or ":" in key:
            raise UsageError(f"OTEL_EXPORTER_OTLP_HEADERS: the header {key!r} cannot be sent "
                             "as written (a line break, a control character or a ':' in it)")
    resource: dict[str, Any] = {"service.name": "chronum", "telemetry.sdk.language": "python",
                                "telemetry.sdk.name": "chronum"}
    resource.update(_pairs(environ.get("OTEL_RESOURCE_ATTRIBUTES", ""),
                           "OTEL_RESOURCE_ATTRIBUTES"))
    if environ.get("OTEL_SERVICE_NAME", "").strip():
        resource["service.name"] = environ["OTEL_SERVICE_NAME"].strip()
    batch = int(_number(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512))
    return Settings(
        url=url, protocol=protocol, headers=headers,
        timeout_s=_number(environ, timeout_name, 10_000) / 1000, gzip=compression == "gzip",
        resource=resource, batch=max(batch, 1),
        delay_s=_number(environ, "OTEL_BSP_SCHEDULE_DELAY", 5_000) / 1000,
        certificate=_get(environ, "CERTIFICATE")[1],
        client_certificate=_get(environ, "CLIENT_CERTIFICATE")[1],
        client_key=_get(environ, "CLIENT_KEY")[1])


# -- spans ------------------------------------------------------------------------------------

def _ns(at: float) -> int:
    return int(at * 1e9)


_OK = (OK, "")


_NONE: dict[str, Any] = {}


class Span:
    """A span as OTLP carries it: ids as integers, times in ns since the epoch, attributes as
    ``shared`` (a dict several spans hold, never changed: a step's and its attempts' flow, run
    and step, encoded once) plus ``attributes``, events as ``(time, name, attributes)``, status
    as ``(code, message)``."""

    __slots__ = ("attributes", "end", "events", "name", "parent", "shared", "span_id", "start",
                 "status", "trace_id")

    def __init__(self, name: str, trace_id: int, start: int, parent: int | None,
                 attributes: dict[str, Any], shared: dict[str, Any] = _NONE) -> None:
        self.name = name
        self.trace_id = trace_id
        self.start = self.end = start
        self.parent = parent
        self.span_id = random.getrandbits(64) or 1
        self.attributes = attributes
        self.shared = shared
        self.events: list[tuple[int, str, dict[str, Any]]] = []
        self.status: tuple[int, str] = (UNSET, "")


class Tracer:
    """The fold from a run's events to its spans: ended spans collect in ``done``."""

    def __init__(self) -> None:
        self._runs: dict[str, tuple[Span, str]] = {}  # run id -> (root span, flow)
        self._steps: dict[tuple[str, str], Span] = {}
        self._attempts: dict[tuple[str, str], Span] = {}
        self.done: list[Span] = []

    def __call__(self, event: Event) -> None:
        _HANDLERS[type(event)](self, event)

    def _trace(self, run_id: str) -> tuple[int, int | None, str]:
        """(trace id, root span id, flow) of a run (a fresh trace for one not seen start)."""
        run = self._runs.get(run_id)
        if run is None:
            return random.getrandbits(128) or 1, None, ""
        return run[0].trace_id, run[0].span_id, run[1]

    def _end(self, span: Span, end: int) -> None:
        span.end = end if end > span.start else span.start
        self.done.append(span)

    def _run_started(self, event: RunStarted) -> None:
        attributes: dict[str, Any] = {"chronum.max_parallel": event.max_parallel}
        if event.parent_run_id:
            attributes["chronum.parent_run_id"] = event.parent_run_id
        span = Span(f"run {event.flow}", random.getrandbits(128) or 1, _ns(event.at), None,
                    attributes, {"chronum.flow": event.flow, "chronum.run_id": event.run_id})
        self._runs[event.run_id] = (span, event.flow)

    def _step_span(self, event: Event, cache: str) -> Span:
        key = (event.run_id, event.step or "")
        span = self._steps.get(key)
        if span is None:
            trace_id, root, flow = self._trace(event.run_id)
            shared = {"chronum.flow": flow, "chronum.run_id": event.run_id,
                      "chronum.step": event.step}
            span = self._steps[key] = Span(f"step {event.step}", trace_id, _ns(event.at), root,
                                           {"chronum.cache": cache}, shared)
        return span

    def _started(self, event: StepStarted) -> None:
        key = (event.run_id, event.step or "")
        step = self._steps.get(key) or self._step_span(event, "ran")
        attempt = event.attempt or 1
        self._attempts[key] = Span(
            f"attempt {attempt}", step.trace_id, int(event.at * 1e9), step.span_id,
            {"chronum.attempt": attempt, "chronum.executor": event.executor}, step.shared)

    def _end_attempt(self, key: tuple[str, str], end: int, ok: bool, exit_code: int | None,
                     reason: str) -> None:
        span = self._attempts.pop(key, None)
        if span is None:
            return
        if exit_code is not None:
            span.attributes["chronum.exit_code"] = exit_code
        if reason:
            span.attributes["chronum.reason"] = reason
        span.status = _OK if ok else (ERROR, reason or "failed")
        span.end = end if end > span.start else span.start
        self.done.append(span)

    def _retrying(self, event: StepRetrying) -> None:
        self._end_attempt((event.run_id, event.step or ""), _ns(event.at), False,
                          event.exit_code, event.reason)
        self._step_span(event, "ran").events.append(
            (_ns(event.at), "retry wait", {"chronum.attempt": event.attempt or 0,
                                           "chronum.delay_s": float(event.delay_s),
                                           "chronum.reason": event.reason}))

    def _ended(self, event: StepSucceeded | StepFailed | StepCancelled) -> None:
        status = _ENDED[type(event)]
        reason = getattr(event, "reason", "") or ""
        ok = status == "succeeded"
        key = (event.run_id, event.step or "")
        end = int(event.at * 1e9)
        self._end_attempt(key, end, ok, event.exit_code, reason)
        self._finish_step(key, end, self._steps.get(key) or self._step_span(event, "ran"),
                          status, ok, event.exit_code, reason)

    def _finish_step(self, key: tuple[str, str], end: int, span: Span, status: str, ok: bool,
                     exit_code: int | None, reason: str) -> None:
        span.attributes["chronum.status"] = status
        if exit_code is not None:
            span.attributes["chronum.exit_code"] = exit_code
        if reason:
            span.attributes["chronum.reason"] = reason
        if ok:
            span.status = _OK
        elif status in ("failed", "cancelled"):
            span.status = (ERROR, reason or status)
        self._steps.pop(key, None)
        span.end = end if end > span.start else span.start
        self.done.append(span)

    def _skipped(self, event: StepSkipped) -> None:
        self._finish_step((event.run_id, event.step or ""), _ns(event.at),
                          self._step_span(event, "ran"), event.status, False, None, event.reason)

    def _cached(self, event: StepCached) -> None:
        span = self._step_span(event, "cached")
        span.attributes["chronum.cached_from"] = event.from_run
        self._finish_step((event.run_id, event.step or ""), _ns(event.at), span, "cached", True,
                          None, "")

    def _run_finished(self, event: RunFinished) -> None:
        end = _ns(event.at)
        for key in [k for k in self._attempts if k[0] == event.run_id]:
            self._end(self._attempts.pop(key), end)
        for key in [k for k in self._steps if k[0] == event.run_id]:
            self._end(self._steps.pop(key), end)
        run = self._runs.pop(event.run_id, None)
        if run is not None:
            span = run[0]
            span.attributes["chronum.status"] = event.status
            span.attributes["chronum.n_failed"] = event.n_failed
            span.status = (_OK if event.status == "succeeded" else
                           (ERROR, f"run {event.status}"))
            self._end(span, end)


_ENDED: dict[type[Event], str] = {StepSucceeded: "succeeded", StepFailed: "failed",
                                  StepCancelled: "cancelled"}
_HANDLERS: dict[type[Event], Any] = {
    RunStarted: Tracer._run_started,
    StepStarted: Tracer._started,
    StepRetrying: Tracer._retrying,
    StepSucceeded: Tracer._ended,
    StepFailed: Tracer._ended,
    StepCancelled: Tracer._ended,
    StepSkipped: Tracer._skipped,
    StepCached: Tracer._cached,
    RunFinished: Tracer._run_finished,
}


# -- OTLP protobuf, written by hand --------------------------------------------------------------
# The wire format of opentelemetry/proto/collector/trace/v1 (ExportTraceServiceRequest), for
# the fields a span here uses. A tag byte is (field number << 3) | wire type (0 varint,
# 1 fixed64, 2 length-delimited, 5 fixed32); the tests decode the result with
# opentelemetry-proto's generated classes.

_SMALL = [bytes([n]) for n in range(128)]
_Q = struct.Struct("<Q").pack
_D = struct.Struct("<d").pack
_FLAGS = b"\x85\x01" + struct.pack("<I", FLAGS)  # field 16, fixed32


def _varint(n: int) -> bytes:
    if n < 128:
        return _SMALL[n]
    if n < 16384:
        return bytes((n & 0x7F | 0x80, n >> 7))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field."""
    return tag + _varint(len(payload)) + payload


def _any_value(value: Any) -> bytes:
    """An ``AnyValue``: string 1, bool 2, int64 3, double 4."""
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value & 0xFFFF_FFFF_FFFF_FFFF)  # two's complement int64
    if isinstance(value, float):
        return b"\x21" + _D(value)
    return _field(b"\x0a", str(value).encode())


class _Attributes:
    """Encodes ``KeyValue``s, each (key, value) once per request: a run's spans repeat the
    flow, run id, step, cache and status values many times over."""

    def __init__(self) -> None:
        self._seen: dict[tuple[bytes, str, type, Any], bytes] = {}
        self._shared: dict[int, bytes] = {}
        self._blocks: dict[tuple[tuple[str, Any], ...], bytes] = {}

    def block(self, attributes: dict[str, Any]) -> bytes:
        """A span's own attributes, encoded once per request for the same keys and values:
        most steps end alike. (A span's attributes are ``str`` or ``int``, never a ``bool`` or
        ``float`` that would compare equal to an ``int`` and take its bytes.)"""
        known = tuple(attributes.items())
        encoded = self._blocks.get(known)
        if encoded is None:
            encoded = self._blocks[known] = b"".join(self(b"\x4a", attributes))
        return encoded

    def shared(self, attributes: dict[str, Any]) -> bytes:
        """A span's ``shared`` attributes, encoded once per dict: every span of the request
        is alive while it is encoded, so no two of their dicts share an ``id``."""
        encoded = self._shared.get(id(attributes))
        if encoded is None:
            encoded = self._shared[id(attributes)] = b"".join(self(b"\x4a", attributes))
        return encoded

    def __call__(self, tag: bytes, attributes: Mapping[str, Any]) -> list[bytes]:
        seen = self._seen
        out = []
        for key, value in attributes.items():
            if value is None:
                continue
            known = (tag, key, type(value), value)  # the tag: a span's or an event's
            try:
                encoded = seen.get(known)
                cache = True
            except TypeError:  # a value that cannot be a dict key is encoded each time
                encoded, cache = None, False
            if encoded is None:
                encoded = _field(tag, _field(b"\x0a", key.encode())
                                 + _field(b"\x12", _any_value(value)))
                if cache:
                    seen[known] = encoded
            out.append(encoded)
        return out


_M64 = (1 << 64) - 1
#: trace_id (field 1, 16 bytes) and span_id (2, 8 bytes), then parent_span_id (4, 8 bytes):
#: ids are big-endian, as their hex in JSON reads.
_ROOT = struct.Struct(">BBQQBBQ").pack
_CHILD = struct.Struct(">BBQQBBQBBQ").pack
#: kind (6), start_time_unix_nano (7, fixed64), end_time_unix_nano (8, fixed64).
_TIMES = struct.Struct("<BBBQBQ").pack
_STATUS_OK = _field(b"\x7a", b"\x18" + _SMALL[OK])


def _span_pb(span: Span, attributes: _Attributes) -> bytes:
    t = span.trace_id
    name = span.name.encode()
    parts = [_ROOT(0x0A, 16, t >> 64, t & _M64, 0x12, 8, span.span_id) if span.parent is None
             else _CHILD(0x0A, 16, t >> 64, t & _M64, 0x12, 8, span.span_id, 0x22, 8,
                         span.parent),
             b"\x2a", _varint(len(name)), name,
             _TIMES(0x30, KIND_INTERNAL, 0x39, span.start, 0x41, span.end),
             attributes.shared(span.shared), attributes.block(span.attributes)]
    for at, title, values in span.events:
        parts.append(_field(b"\x5a", b"".join([b"\x09", _Q(at), _field(b"\x12", title.encode()),
                                               *attributes(b"\x1a", values)])))
    code, message = span.status
    if code == OK and not message:
        parts.append(_STATUS_OK)
    elif code != UNSET:
        parts.append(_field(b"\x7a", (_field(b"\x12", message.encode()) if message else b"")
                            + b"\x18" + _SMALL[code]))
    parts.append(_FLAGS)
    body = b"".join(parts)
    return b"\x12" + _varint(len(body)) + body  # ScopeSpans.spans


def encode_protobuf(spans: list[Span], resource: Mapping[str, Any]) -> bytes:
    """An ``ExportTraceServiceRequest`` of ``spans``, all from one resource and scope."""
    attributes = _Attributes()
    scope = _field(b"\x0a", _field(b"\x0a", b"chronum"))  # InstrumentationScope{name}
    scope_spans = _field(b"\x12", scope + b"".join([_span_pb(s, attributes) for s in spans]))
    resource_pb = _field(b"\x0a", b"".join(attributes(b"\x0a", resource)))
    return _field(b"\x0a", resource_pb + scope_spans)


def _any_json(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def _attributes_json(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _any_json(v)} for k, v in attributes.items() if v is not None]


def encode_json(spans: list[Span], resource: Mapping[str, Any]) -> bytes:
    """The same request in OTLP's JSON form (ids in hex, 64-bit integers as strings)."""
    out = []
    for span in spans:
        item: dict[str, Any] = {
            "traceId": f"{span.trace_id:032x}", "spanId": f"{span.span_id:016x}",
            "name": span.name, "kind": KIND_INTERNAL, "flags": FLAGS,
            "startTimeUnixNano": str(span.start), "endTimeUnixNano": str(span.end),
            "attributes": _attributes_json({**span.shared, **span.attributes})}
        if span.parent is not None:
            item["parentSpanId"] = f"{span.parent:016x}"
        if span.events:
            item["events"] = [{"timeUnixNano": str(at), "name": name,
                               "attributes": _attributes_json(values)}
                              for at, name, values in span.events]
        code, message = span.status
        if code != UNSET:
            item["status"] = {"code": code, **({"message": message} if message else {})}
        out.append(item)
    request = {"resourceSpans": [{
        "resource": {"attributes": _attributes_json(resource)},
        "scopeSpans": [{"scope": {"name": "chronum"}, "spans": out}]}]}
    return json.dumps(request, separators=(",", ":")).encode()


# -- sending ----------------------------------------------------------------------------------

class ExportError(Exception):
    """An export the collector did not take."""


class Sender:
    """POSTs requests to the collector over one kept-alive connection.

    HTTP/1.1 is written on the socket here rather than through ``http.client``, which imports
    the ``email`` package to parse headers: that import alone costs a short run a visible
    share, and a POST and its answer need a status line, ``Content-Length`` or chunks, and
    ``Connection``."""

    def __init__(self, config: Settings) -> None:
        self.config = config
        parts = urllib.parse.urlsplit(config.url)
        self._target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        headers = {"Host": parts.netloc.rpartition("@")[2], "User-Agent": "chronum",
                   "Content-Type": "application/x-protobuf"
                   if config.protocol == "http/protobuf" else "application/json",
                   **config.headers}
        if config.gzip:
            headers["Content-Encoding"] = "gzip"
        self._head = (f"POST {self._target} HTTP/1.1\r\n"
                      + "".join(f"{k}: {v}\r\n" for k, v in headers.items()))
        self._sock: Any = None
        self._file: Any = None
        self.encode = encode_protobuf if config.protocol == "http/protobuf" else encode_json

    def _open(self) -> None:
        import socket

        sock = socket.create_connection((self._host, self._port), self.config.timeout_s)
        if self._https:
            import ssl

            context = ssl.create_default_context(cafile=self.config.certificate)
            if self.config.client_certificate:
                context.load_cert_chain(self.config.client_certificate, self.config.client_key)
            sock = context.wrap_socket(sock, server_hostname=self._host)
        self._sock, self._file = sock, sock.makefile("rb")

    def _post(self, body: bytes) -> tuple[int, bytes]:
        """One request and its answer: (status, body)."""
        if self._sock is None:
            self._open()
        head = f"{self._head}Content-Length: {len(body)}\r\n\r\n".encode("latin-1")
        self._sock.sendall(head + body)
        read = self._file
        status = read.readline(65537).split(None, 2)
        if len(status) < 2 or not status[0].startswith(b"HTTP/") or not status[1].isdigit():
            raise ConnectionError(f"not an HTTP answer: {b' '.join(status)[:100]!r}")
        headers: dict[bytes, bytes] = {}
        while True:
            line = read.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        code = int(status[1])
        if code in (204, 304) or code < 200:
            answer = b""  # no body, whatever the headers say
        elif b"content-length" in headers:
            answer = read.read(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding") == b"chunked":
            answer = b""
            while size := int(read.readline(65537).split(b";")[0], 16):
                answer += read.read(size)
                read.readline(65537)
            while read.readline(65537) not in (b"\r\n", b"\n", b""):
                pass  # trailers
        else:
            answer = read.read()  # the answer ends with the connection
            headers[b"connection"] = b"close"
        if headers.get(b"connection") == b"close" or (
                status[0] == b"HTTP/1.0" and headers.get(b"connection") != b"keep-alive"):
            self.close()
        return code, answer

    def send(self, spans: list[Span]) -> None:
        """Every span, in requests of at most ``batch``; ExportError if one is refused."""
        step = self.config.batch
        for i in range(0, len(spans), step):
            body = self.encode(spans[i:i + step], self.config.resource)
            if self.config.gzip:
                packer = zlib.compressobj(wbits=31)  # the gzip container
                body = packer.compress(body) + packer.flush()
            deadline = time.monotonic() + self.config.timeout_s
            attempt = 0
            while True:
                reused = self._sock is not None
                try:
                    code, answer = self._post(body)
                except (OSError, ValueError) as exc:
                    self.close()
                    if reused:  # the collector closed the idle connection: once more, anew
                        continue
                    why = f"{type(exc).__name__}: {exc}"
                    ssl = sys.modules.get("ssl")  # imported for an https:// endpoint
                    retry = ssl is None or not isinstance(exc, ssl.SSLError)  # not a blip
                else:
                    if 200 <= code < 300:
                        break
                    why = f"HTTP {code} {answer[:200]!r}"
                    retry = code in RETRYABLE
                pause = 0.5 * 2 ** attempt
                attempt += 1
                if not retry or attempt == TRIES or time.monotonic() + pause > deadline:
                    raise ExportError(f"{len(spans) - i} spans not sent to {self.config.url}: "
                                      f"{why}")
                time.sleep(pause)

    def close(self) -> None:
        if self._sock is not None:
            import contextlib

            with contextlib.suppress(OSError):
                self._file.close()
                self._sock.close()
            self._sock = self._file = None


# -- the subscriber ---------------------------------------------------------------------------

class OtelSubscriber:
    """The run's side: keeps each event the traces use; a thread sends the spans of a long
    run as it goes, ``close()`` the rest. See the module's docstring."""

    label = "the OpenTelemetry exporter"

    def __init__(self, config: Settings) -> None:
        self.config = config
        self.sender = Sender(config)
        self.tracer = Tracer()
        self._events: deque[Event] = deque()
        self._kinds = frozenset(_HANDLERS)
        self._lock = threading.Lock()  # one export at a time: the thread's or close()'s
        self._stop = threading.Event()
        self._failed = False
        self._thread: threading.Thread | None = None
        if config.delay_s > 0:
            self._thread = threading.Thread(target=self._every, name="chronum-otel",
                                            daemon=True)
            self._thread.start()

    def __call__(self, event: Event) -> None:
        if type(event) in self._kinds:
            self._events.append(event)

    def _every(self) -> None:
        while not self._stop.wait(self.config.delay_s):
            self.export()

    def export(self) -> None:
        """The spans the events so far ended, sent; a failure is reported once."""
        with self._lock:
            events, tracer = self._events, self.tracer
            while events:
                tracer(events.popleft())
            done, tracer.done = tracer.done, []
            if not done:
                return
            try:
                self.sender.send(done)
            except ExportError as exc:
                if not self._failed:
                    logger.warning("%s could not send spans: %s", self.label, exc)
                self._failed = True

    def close(self) -> None:
        """Send every span left, before the process may exit."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.export()
        finally:
            self.sender.close()


class _Disabled:
    """``OTEL_SDK_DISABLED=true``: the subscriber takes the events and sends nothing."""

    label = "the OpenTelemetry exporter (disabled)"

    def __call__(self, event: Event) -> None:
        pass


def subscriber() -> OtelSubscriber | _Disabled:
    """The ``chronum.subscribers`` entry point ``otel``."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return _Disabled()
    return OtelSubscriber(settings())
