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
send every span, so nothing is lost when the process exits right after. The helper has its own
``TracerProvider`` rather than the global one.

Enable with ``CHRONUM_SUBSCRIBERS=otel`` or ``chronum run --subscriber otel``; needs the
``otel`` extra (``pip install 'chronum[otel]'``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
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


def _ns(at: float) -> int:
    return int(at * 1_000_000_000)


class OtelSubscriber:
    """Turns a run's events into spans; see the module's docstring."""

    label = "the OpenTelemetry exporter"

    def __init__(self, exporter: Any = None) -> None:
        try:
            from opentelemetry import trace
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.trace import Status, StatusCode
        except ImportError as exc:
            raise UsageError(f"the otel subscriber needs the otel extra ({exc.name} is "
                             "missing): pip install 'chronum[otel]'") from None
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        named = "OTEL_SERVICE_NAME" in os.environ or "service.name=" in os.environ.get(
            "OTEL_RESOURCE_ATTRIBUTES", "")
        resource = Resource.create({} if named else {"service.name": "chronum"})
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("chronum")
        self._trace = trace
        self._status, self._code = Status, StatusCode
        self._runs: dict[str, tuple[Any, Any, str]] = {}  # run id -> (span, context, flow)
        self._steps: dict[tuple[str, str], tuple[Any, Any]] = {}  # -> (span, context)
        self._attempts: dict[tuple[str, str], Any] = {}

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

    def _run_started(self, event: RunStarted) -> None:
        attributes: dict[str, Any] = {"chronum.flow": event.flow,
                                      "chronum.run_id": event.run_id,
                                      "chronum.max_parallel": event.max_parallel}
        if event.parent_run_id:
            attributes["chronum.parent_run_id"] = event.parent_run_id
        span = self.tracer.start_span(f"run {event.flow}", start_time=_ns(event.at),
                                      attributes=attributes)
        self._runs[event.run_id] = (span, self._trace.set_span_in_context(span), event.flow)

    def _step_span(self, event: Event, cache: str) -> tuple[Any, Any]:
        key = (event.run_id, event.step or "")
        known = self._steps.get(key)
        if known is None:
            run = self._runs.get(event.run_id)
            attributes = {**self._base(event), "chronum.cache": cache}
            span = self.tracer.start_span(f"step {event.step}", start_time=_ns(event.at),
                                          context=run[1] if run else None,
                                          attributes=attributes)
            known = self._steps[key] = (span, self._trace.set_span_in_context(span))
        return known

    def _started(self, event: StepStarted) -> None:
        _span, context = self._step_span(event, "ran")
        attempt = event.attempt or 1
        attributes = {**self._base(event), "chronum.attempt": attempt,
                      "chronum.executor": event.executor}
        self._attempts[(event.run_id, event.step or "")] = self.tracer.start_span(
            f"attempt {attempt}", start_time=_ns(event.at), context=context,
            attributes=attributes)

    def _end_attempt(self, event: Event, ok: bool, exit_code: int | None, reason: str) -> None:
        span = self._attempts.pop((event.run_id, event.step or ""), None)
        if span is None:
            return
        if exit_code is not None:
            span.set_attribute("chronum.exit_code", exit_code)
        if reason:
            span.set_attribute("chronum.reason", reason)
        span.set_status(self._status(self._code.OK) if ok else
                        self._status(self._code.ERROR, reason or "failed"))
        span.end(end_time=_ns(event.at))

    def _retrying(self, event: StepRetrying) -> None:
        self._end_attempt(event, False, event.exit_code, event.reason)
        span, _ = self._step_span(event, "ran")
        span.add_event("retry wait", attributes={"chronum.attempt": event.attempt or 0,
                                                 "chronum.delay_s": event.delay_s,
                                                 "chronum.reason": event.reason},
                       timestamp=_ns(event.at))

    def _ended(self, event: StepSucceeded | StepFailed | StepCancelled) -> None:
        status = {StepSucceeded: "succeeded", StepFailed: "failed",
                  StepCancelled: "cancelled"}[type(event)]
        reason = getattr(event, "reason", "") or ""
        ok = status == "succeeded"
        self._end_attempt(event, ok, event.exit_code, reason)
        span, _ = self._step_span(event, "ran")
        self._finish_step(event, span, status, ok, event.exit_code, reason)

    def _finish_step(self, event: Event, span: Any, status: str, ok: bool,
                     exit_code: int | None, reason: str) -> None:
        span.set_attribute("chronum.status", status)
        if exit_code is not None:
            span.set_attribute("chronum.exit_code", exit_code)
        if reason:
            span.set_attribute("chronum.reason", reason)
        if ok:
            span.set_status(self._status(self._code.OK))
        elif status in ("failed", "cancelled"):
            span.set_status(self._status(self._code.ERROR, reason or status))
        span.end(end_time=_ns(event.at))
        self._steps.pop((event.run_id, event.step or ""), None)

    def _skipped(self, event: StepSkipped) -> None:
        span, _ = self._step_span(event, "ran")
        self._finish_step(event, span, event.status, False, None, event.reason)

    def _cached(self, event: StepCached) -> None:
        span, _ = self._step_span(event, "cached")
        span.set_attribute("chronum.cached_from", event.from_run)
        self._finish_step(event, span, "cached", True, None, "")

    def _run_finished(self, event: RunFinished) -> None:
        for key in [k for k in self._attempts if k[0] == event.run_id]:
            self._attempts.pop(key).end(end_time=_ns(event.at))
        for key in [k for k in self._steps if k[0] == event.run_id]:
            self._steps.pop(key)[0].end(end_time=_ns(event.at))
        run = self._runs.pop(event.run_id, None)
        if run is not None:
            span = run[0]
            span.set_attribute("chronum.status", event.status)
            span.set_attribute("chronum.n_failed", event.n_failed)
            span.set_status(self._status(self._code.OK) if event.status == "succeeded" else
                            self._status(self._code.ERROR, f"run {event.status}"))
            span.end(end_time=_ns(event.at))
        self.provider.force_flush()

    def close(self) -> None:
        """Send what is left and stop the exporter (the session calls it after the run)."""
        self.provider.shutdown()


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
    """The run's side: starts the helper, hands it each event as a JSON line."""

    label = "the OpenTelemetry exporter"

    def __init__(self) -> None:
        import importlib.util

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

    def __call__(self, event: Event) -> None:
        if event.kind not in self._kinds:
            return
        self._pipe.write(json.dumps(event.to_dict(), default=str).encode() + b"\n")
        if type(event) is RunFinished:
            self._pipe.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):  # the helper died: its exit status says so below
            self._pipe.close()
        try:
            code = self.proc.wait(timeout=FLUSH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            logger.warning("%s did not finish sending spans within %g s; stopped it",
                           self.label, FLUSH_TIMEOUT_S)
            return
        if code != 0:
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
