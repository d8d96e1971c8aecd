"""The ``otel`` event subscriber: each run as an OpenTelemetry trace, sent over OTLP/HTTP.

One trace per run (its root span), a span per step, a child span per attempt. Attributes say
the flow, run id, step, attempt, exit code, reason and cache state; a span's status follows
the step's (failed and cancelled are errors), and the wait before a retry is an event on the
step's span. Configuration is the standard ``OTEL_*`` variables, read by the SDK and the
OTLP/HTTP exporter (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ...).

The work happens in a helper process (``python -m chronum.exporters.otel``) that the run's
subscriber starts and feeds the events as JSON lines through a pipe: the SDK and the OTLP
exporter take longer to import than a short run takes, and making and encoding a span per step
and attempt is work the runner need not do, so the runner only writes lines. ``close()``
(called by the session once the run is recorded) closes the pipe and waits for the helper to
send every span, so nothing is lost when the process exits right after. The helper builds the
SDK's ``ReadableSpan`` records itself and hands them to the OTLP/HTTP exporter in batches,
without a ``TracerProvider`` (so nothing global changes, and ``OTEL_TRACES_SAMPLER`` does not
apply: every run is traced in full).

Enable with ``CHRONUM_SUBSCRIBERS=otel`` or ``chronum run --subscriber otel``; needs the
``otel`` extra (``pip install 'chronum[otel]'``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import subprocess
import sys
from typing import IO, Any

from ..errors import UsageError
from ..eventbus import (
    Event,
    LogLine,
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

__all__ = ["OtelPipe", "OtelSubscriber", "event_from_dict", "subscriber"]

logger = logging.getLogger("chronum")

#: Seconds ``close()`` waits for the helper to send the last spans.
FLUSH_TIMEOUT_S = 30.0
#: Ended spans sent per export.
BATCH = 512


def _ns(at: float) -> int:
    return int(at * 1_000_000_000)


class _Span:
    """A span being recorded: plain fields, made into the SDK's ``ReadableSpan`` when it
    ends. The SDK's tracer would take a lock, run a sampler and clean every attribute for each
    span, which for a span per step and attempt costs more than the run it describes."""

    __slots__ = ("attributes", "events", "name", "parent", "span_id", "start", "status")

    def __init__(self, name: str, start: int, parent: int | None,
                 attributes: dict[str, Any]) -> None:
        self.name = name
        self.start = start
        self.parent = parent
        self.span_id = random.getrandbits(64) or 1
        self.attributes = attributes
        self.events: list[Any] = []
        self.status: tuple[bool | None, str] = (None, "")  # (ok, description); None: unset


class OtelSubscriber:
    """Turns a run's events into spans and exports them; see the module's docstring."""

    label = "the OpenTelemetry exporter"

    def __init__(self, exporter: Any = None) -> None:
        try:
            from opentelemetry.sdk import trace as sdk_trace
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.util.instrumentation import InstrumentationScope
            from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags
        except ImportError as exc:
            raise UsageError(f"the otel subscriber needs the otel extra ({exc.name} is "
                             "missing): pip install 'chronum[otel]'") from None
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        named = "OTEL_SERVICE_NAME" in os.environ or "service.name=" in os.environ.get(
            "OTEL_RESOURCE_ATTRIBUTES", "")
        self.resource = Resource.create({} if named else {"service.name": "chronum"})
        self.exporter = exporter
        self._sdk = sdk_trace
        self._scope = InstrumentationScope("chronum")
        self._context, self._flags = SpanContext, TraceFlags(TraceFlags.SAMPLED)
        self._status, self._code = Status, StatusCode
        self._runs: dict[str, tuple[_Span, int, str]] = {}  # run id -> (span, trace id, flow)
        self._steps: dict[tuple[str, str], _Span] = {}
        self._attempts: dict[tuple[str, str], _Span] = {}
        self._done: list[Any] = []

    # -- events -----------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        kind = type(event)
        if kind is LogLine:
            return
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, event)

    def _base(self, event: Event) -> dict[str, Any]:
        flow = self._runs[event.run_id][2] if event.run_id in self._runs else ""
        attributes: dict[str, Any] = {"chronum.flow": flow, "chronum.run_id": event.run_id}
        if event.step is not None:
            attributes["chronum.step"] = event.step
        return attributes

    def _end(self, span: _Span, run_id: str, end: int) -> None:
        """The span, ended, into the next export (sent in batches of ``BATCH``)."""
        run = self._runs.get(run_id)
        trace_id = run[1] if run is not None else random.getrandbits(128) or 1
        ok, why = span.status
        status = (self._status(self._code.UNSET) if ok is None else
                  self._status(self._code.OK) if ok else self._status(self._code.ERROR, why))
        parent = (None if span.parent is None else
                  self._context(trace_id, span.parent, False, self._flags))
        self._done.append(self._sdk.ReadableSpan(
            span.name, self._context(trace_id, span.span_id, False, self._flags), parent,
            self.resource, span.attributes, span.events, status=status,
            start_time=span.start, end_time=max(end, span.start),
            instrumentation_scope=self._scope))
        if len(self._done) >= BATCH:
            self.flush()

    def flush(self) -> None:
        done, self._done = self._done, []
        if done:
            self.exporter.export(done)

    def _run_started(self, event: RunStarted) -> None:
        attributes: dict[str, Any] = {"chronum.flow": event.flow,
                                      "chronum.run_id": event.run_id,
                                      "chronum.max_parallel": event.max_parallel}
        if event.parent_run_id:
            attributes["chronum.parent_run_id"] = event.parent_run_id
        span = _Span(f"run {event.flow}", _ns(event.at), None, attributes)
        self._runs[event.run_id] = (span, random.getrandbits(128) or 1, event.flow)

    def _step_span(self, event: Event, cache: str) -> _Span:
        key = (event.run_id, event.step or "")
        span = self._steps.get(key)
        if span is None:
            run = self._runs.get(event.run_id)
            span = self._steps[key] = _Span(
                f"step {event.step}", _ns(event.at), run[0].span_id if run else None,
                {**self._base(event), "chronum.cache": cache})
        return span

    def _started(self, event: StepStarted) -> None:
        step = self._step_span(event, "ran")
        attempt = event.attempt or 1
        self._attempts[(event.run_id, event.step or "")] = _Span(
            f"attempt {attempt}", _ns(event.at), step.span_id,
            {**self._base(event), "chronum.attempt": attempt,
             "chronum.executor": event.executor})

    def _end_attempt(self, event: Event, ok: bool, exit_code: int | None, reason: str) -> None:
        span = self._attempts.pop((event.run_id, event.step or ""), None)
        if span is None:
            return
        if exit_code is not None:
            span.attributes["chronum.exit_code"] = exit_code
        if reason:
            span.attributes["chronum.reason"] = reason
        span.status = (ok, "" if ok else reason or "failed")
        self._end(span, event.run_id, _ns(event.at))

    def _retrying(self, event: StepRetrying) -> None:
        self._end_attempt(event, False, event.exit_code, event.reason)
        self._step_span(event, "ran").events.append(self._sdk.Event(
            "retry wait", {"chronum.attempt": event.attempt or 0,
                           "chronum.delay_s": event.delay_s, "chronum.reason": event.reason},
            _ns(event.at)))

    def _ended(self, event: StepSucceeded | StepFailed | StepCancelled) -> None:
        status = {StepSucceeded: "succeeded", StepFailed: "failed",
                  StepCancelled: "cancelled"}[type(event)]
        reason = getattr(event, "reason", "") or ""
        ok = status == "succeeded"
        self._end_attempt(event, ok, event.exit_code, reason)
        self._finish_step(event, self._step_span(event, "ran"), status, ok, event.exit_code,
                          reason)

    def _finish_step(self, event: Event, span: _Span, status: str, ok: bool,
                     exit_code: int | None, reason: str) -> None:
        span.attributes["chronum.status"] = status
        if exit_code is not None:
            span.attributes["chronum.exit_code"] = exit_code
        if reason:
            span.attributes["chronum.reason"] = reason
        if ok:
            span.status = (True, "")
        elif status in ("failed", "cancelled"):
            span.status = (False, reason or status)
        self._steps.pop((event.run_id, event.step or ""), None)
        self._end(span, event.run_id, _ns(event.at))

    def _skipped(self, event: StepSkipped) -> None:
        self._finish_step(event, self._step_span(event, "ran"), event.status, False, None,
                          event.reason)

    def _cached(self, event: StepCached) -> None:
        span = self._step_span(event, "cached")
        span.attributes["chronum.cached_from"] = event.from_run
        self._finish_step(event, span, "cached", True, None, "")

    def _run_finished(self, event: RunFinished) -> None:
        end = _ns(event.at)
        for key in [k for k in self._attempts if k[0] == event.run_id]:
            self._end(self._attempts.pop(key), event.run_id, end)
        for key in [k for k in self._steps if k[0] == event.run_id]:
            self._end(self._steps.pop(key), event.run_id, end)
        run = self._runs.get(event.run_id)
        if run is not None:
            span = run[0]
            span.attributes["chronum.status"] = event.status
            span.attributes["chronum.n_failed"] = event.n_failed
            span.status = ((True, "") if event.status == "succeeded" else
                           (False, f"run {event.status}"))
            self._end(span, event.run_id, end)
            del self._runs[event.run_id]
        self.flush()

    def close(self) -> None:
        """Send what is left and stop the exporter."""
        try:
            self.flush()
        finally:
            self.exporter.shutdown()


_HANDLERS: dict[type[Event], Any] = {
    RunStarted: OtelSubscriber._run_started,
    StepStarted: OtelSubscriber._started,
    StepRetrying: OtelSubscriber._retrying,
    StepSucceeded: OtelSubscriber._ended,
    StepFailed: OtelSubscriber._ended,
    StepCancelled: OtelSubscriber._ended,
    StepSkipped: OtelSubscriber._skipped,
    StepCached: OtelSubscriber._cached,
    RunFinished: OtelSubscriber._run_finished,
}


_KINDS: dict[str, type[Event]] = {cls.kind: cls for cls in _HANDLERS}


def event_from_dict(row: dict[str, Any]) -> Event | None:
    """An event back from ``Event.to_dict()`` (None for kinds the traces do not use)."""
    cls = _KINDS.get(row["kind"])
    if cls is None:
        return None
    data = dict(row.get("data") or {})
    if "steps" in data:
        data["steps"] = tuple(data["steps"])
    return cls(run_id=row["run_id"], at=row["at"], step=row["step"], attempt=row["attempt"],
               **data)


class OtelPipe:
    """The run's side: starts the helper and hands it each event as a JSON line.

    Writing goes through a thread of its own: while the helper is still importing the SDK,
    the pipe fills, and a write from the run's loop would wait for it."""

    label = "the OpenTelemetry exporter"

    def __init__(self) -> None:
        import importlib.util
        import queue
        import threading

        for module in ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http"):
            if importlib.util.find_spec(module.split(".")[0]) is None or \
                    importlib.util.find_spec(module) is None:
                raise UsageError(f"the otel subscriber needs the otel extra ({module} is "
                                 "missing): pip install 'chronum[otel]'")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chronum.exporters.otel"], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, env=os.environ.copy(),
            # its own session: a Ctrl-C meant for the run must not lose the run's trace
            start_new_session=True)
        assert self.proc.stdin is not None
        self._pipe: IO[bytes] = self.proc.stdin
        self._kinds = frozenset(_KINDS)
        self._queue: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self.failed: BaseException | None = None
        self._writer = threading.Thread(target=self._write, name="chronum-otel", daemon=True)
        self._writer.start()

    def __call__(self, event: Event) -> None:
        if event.kind in self._kinds:
            self._queue.put(event)

    def _write(self) -> None:
        pipe = self._pipe
        try:
            while True:
                event = self._queue.get()
                if event is None:
                    break
                pipe.write(json.dumps(event.to_dict(), default=str).encode() + b"\n")
                if type(event) is RunFinished:
                    pipe.flush()
        except BaseException as exc:  # the helper died: close() says so
            self.failed = exc
        finally:
            with contextlib.suppress(OSError):
                pipe.close()

    def close(self) -> None:
        self._queue.put(None)
        self._writer.join(FLUSH_TIMEOUT_S)
        try:
            code = self.proc.wait(timeout=FLUSH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            logger.warning("%s did not finish sending spans within %g s; stopped it",
                           self.label, FLUSH_TIMEOUT_S)
            return
        if code != 0 or self.failed is not None:
            logger.warning("%s exited with status %s; some spans may be missing", self.label,
                           code)


def subscriber() -> OtelPipe:
    """The ``chronum.subscribers`` entry point ``otel``."""
    return OtelPipe()


def main() -> int:
    """The helper: events as JSON lines on stdin, spans out over OTLP/HTTP, then exit."""
    exporter = OtelSubscriber()
    try:
        for line in sys.stdin.buffer:
            event = event_from_dict(json.loads(line))
            if event is not None:
                exporter(event)
    finally:
        exporter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
