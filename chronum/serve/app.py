"""The ASGI app of ``chronum serve``: pages, the JSON API, the WebSocket, actions, /metrics.

Everything shown is read from the store, never asked of a runner: the runs' rows (made by the
store's recorder through ``state.RunState.apply``, the one fold), the graph drawn by
``render/`` and the events the ``Follower`` finds as other processes commit them. The pages
are static files; their script fetches the API with the token and escapes nothing because it
never parses data as markup (``textContent`` only).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..api import recorded_flow
from ..errors import ChronumError, RunNotFoundError
from ..model import RUN_STATES
from ..render.dot import STATE_COLORS
from ..store import Store, queries
from ..store import cancel as cancel_request
from ..store.frames import to_json_rows
from ..store.logs import relative_log_path
from ..store.schema import connect
from . import data
from .follow import Follower
from .security import Guard

__all__ = ["make_app"]

logger = logging.getLogger("chronum")

STATIC = Path(__file__).with_name("static")
#: Messages (one per poll that found events for it) a WebSocket client may fall behind by
#: before it is dropped (it can reconnect with ``after=SEQ`` and lose nothing).
MAX_BEHIND = 10_000
#: The most of a log one call returns; the page asks again from where it stopped.
LOG_CHUNK = 256 * 1024
#: The name of a run's own log (``session.RUN_LOG``).
RUN_LOG = "(run)"

#: Colours of run and step states for the pages: the pictures' own, and two for run states.
COLORS = {**STATE_COLORS, "interrupted": "#f7c59f"}

_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _json(payload: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(payload, status_code=status)


def _error(message: str, status: int) -> JSONResponse:
    return _json({"error": message}, status)


def _time(text: str | None) -> float | None:
    """An ISO 8601 time (naive means UTC) or epoch seconds, from a query string."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    from datetime import UTC

    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {text[:40]!r} (use ISO 8601, e.g. "
                         "2026-11-29T12:00:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _int(text: str | None, default: int, low: int, high: int) -> int:
    if not text:
        return default
    try:
        return max(low, min(high, int(text)))
    except ValueError:
        raise ValueError(f"not a whole number: {text[:40]!r}") from None


class _Headers:
    """Every HTTP answer refuses foreign Host headers and carries the security headers."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        if not self.guard.host_ok(host):
            if scope["type"] == "http":
                await PlainTextResponse("unknown host", status_code=421)(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008})
            return

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers += [(b"content-security-policy", _CSP.encode()),
                            (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer"),
                            (b"x-frame-options", b"DENY"),
                            (b"cache-control", b"no-store")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class Server:
    """One dashboard over one store file."""

    def __init__(self, db: Path, guard: Guard, *, poll_s: float = 0.05) -> None:
        self.db = db
        self.guard = guard
        self.store = Store(db)  # migrates the file, so the indexes the pages need exist
        self.follower = Follower(str(db), poll_s)
        self._children: list[subprocess.Popen[bytes]] = []
        #: /metrics' connection and the step sums of finished runs, once scraped.
        self._metrics: Any = None
        self._metrics_lock = threading.Lock()

    # -- helpers ----------------------------------------------------------------------------

    def _read(self, fn: Callable[..., Any], *args: Any, sweep: bool = False) -> Any:
        return self.store._query(fn, *args, sweep=sweep)

    def authorized(self, request: Request) -> bool:
        return self.guard.bearer_ok(request.headers.get("authorization"))

    def api(self, handler: Callable[[Request], Any], *, action: bool = False
            ) -> Callable[[Request], Awaitable[Response]]:
        """Wrap an API handler: the token, errors as JSON, the work off the event loop."""

        async def endpoint(request: Request) -> Response:
            if not self.authorized(request):
                return _error("a valid token is required (Authorization: Bearer TOKEN)", 401)
            if action and not self.guard.origin_ok(request.headers.get("origin"),
                                                   request.headers.get("host")):
                return _error("this origin may not act on the dashboard", 403)
            try:
                if action:
                    body = await request.json()
                    if not isinstance(body, dict) or body.get("confirm") != \
                            request.path_params.get("run_id"):
                        return _error("confirm the action: send {\"confirm\": RUN_ID}", 400)
                result = await run_in_threadpool(handler, request)
            except RunNotFoundError as exc:
                return _error(str(exc), 404)
            except ValueError as exc:
                return _error(str(exc), 400)
            except ChronumError as exc:
                return _error(str(exc), 409)
            if isinstance(result, Response):
                return result
            return _json(result)

        return endpoint

    def _run_id(self, request: Request) -> str:
        run_id = str(request.path_params["run_id"])
        return str(self._read(queries.resolve_run, run_id, str(self.db)))

    # -- the API ----------------------------------------------------------------------------

    def runs(self, request: Request) -> Any:
        q = request.query_params
        status = q.get("status") or None
        if status is not None and status not in RUN_STATES:
            raise ValueError(f"unknown status {status!r}; one of {', '.join(RUN_STATES)}")
        page = self._read(lambda conn: data.runs_page(
            conn, flow=q.get("flow") or None, status=status, since=_time(q.get("since")),
            until=_time(q.get("until")), limit=_int(q.get("limit"), 50, 1, 500),
            offset=_int(q.get("offset"), 0, 0, 10**9)), sweep=True)
        page["runs"] = to_json_rows(page["runs"])
        return page

    def flows(self, request: Request) -> Any:
        return {"flows": [{"flow": f["flow"], "runs": to_json_rows(f["runs"])}
                          for f in self._read(data.flows_summary)], "colors": COLORS}

    def flow(self, request: Request) -> Any:
        detail = self._read(data.flow_detail, str(request.path_params["flow"]))
        detail["runs"] = to_json_rows(detail["runs"])
        detail["colors"] = COLORS
        return detail

    def run(self, request: Request) -> Any:
        rid = self._run_id(request)
        info = self.store.run(rid)
        info.pop("origin", None)
        info["resumes"] = to_json_rows(self._read(data.related_runs, rid))
        info["steps"] = self._step_rows(rid)
        info["colors"] = COLORS
        return to_json_rows([info])[0]

    def _step_rows(self, rid: str) -> list[dict[str, Any]]:
        rows = self.store.step_rows(rid)
        for row in rows:
            row.pop("log_path", None)
            row.pop("log_tail", None)
        return to_json_rows(rows)

    def steps(self, request: Request) -> Any:
        return self._step_rows(self._run_id(request))

    def attempts(self, request: Request) -> Any:
        return to_json_rows(self.store.attempts(self._run_id(request)))

    def events(self, request: Request) -> Any:
        rid = self._run_id(request)
        after = _int(request.query_params.get("after"), 0, 0, 10**12)
        rows = [e for e in self.store.events(rid) if e["seq"] > after]
        return to_json_rows(rows)

    def graph(self, request: Request) -> Any:
        from ..render.svg import graph_for

        rid = self._run_id(request)
        info = self.store.run(rid)
        layout = graph_for(rid, recorded_flow(info))
        return {"svg": layout.svg if layout is not None else None, "colors": COLORS}

    def timeline(self, request: Request) -> Any:
        from ..render.timeline import timeline_svg

        rid = self._run_id(request)
        names = [row["step"] for row in self.store.steps(rid)]
        now = time.time()
        # an attempt still running is drawn up to now, so the picture grows while it runs
        attempts = [{**a, "finished_at": now} if a["status"] == "running" and
                    a["finished_at"] is None else a for a in self.store.attempts(rid)]
        return {"svg": timeline_svg(attempts, names)}

    def log_file(self, rid: str, step: str) -> Path:
        """The step's log file, only ever under the store's log folder."""
        names = {row["step"] for row in self.store.steps(rid)}
        if step not in names and step != RUN_LOG:
            raise RunNotFoundError(f"run {rid} has no step {step!r}")
        try:
            relative = relative_log_path(rid, step)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        folder = (self.store.log_root / "logs").resolve()
        path = (self.store.log_root / relative).resolve()
        if not path.is_relative_to(folder):
            raise ValueError(f"the log of {step!r} is not under the store's log folder")
        return path

    def logs(self, request: Request) -> Any:
        rid = self._run_id(request)
        path = self.log_file(rid, str(request.path_params["step"]))
        offset = _int(request.query_params.get("offset"), 0, 0, 2**62)
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read(LOG_CHUNK)
                size = os.fstat(f.fileno()).st_size
        except FileNotFoundError:
            return {"text": "", "offset": 0, "size": 0}
        # Only whole lines (a line is being written when the chunk ends mid-way)
        cut = chunk.rfind(b"\n") + 1 if len(chunk) == LOG_CHUNK or not chunk.endswith(b"\n") \
            else len(chunk)
        chunk = chunk[:cut]
        return {"text": chunk.decode("utf-8", "replace"), "offset": offset + len(chunk),
                "size": size}

    # -- actions ----------------------------------------------------------------------------

    def cancel(self, request: Request) -> Any:
        from ..session import cancel_run

        rid = self._run_id(request)
        status = self.store.run(rid)["status"]  # a run whose runner died is interrupted now
        if status == "running":
            if cancel_request.request(self.store, rid):
                return {"run_id": rid, "result": "requested",
                        "message": f"asked the runner of run {rid} to cancel it"}
            status = self.store.run(rid)["status"]
        if status == "interrupted":
            return {"run_id": rid, "result": "cancelled",
                    "message": cancel_run(rid, db=self.db)}
        raise ChronumError(f"run {rid} is {status}; only a running run can be cancelled")

    def resume(self, request: Request) -> Any:
        from ..session import prepare_resume

        rid = self._run_id(request)
        status = self.store.run(rid)["status"]
        if status in ("succeeded", "running"):
            raise ChronumError(f"run {rid} is {status}: there is nothing to resume")
        prepare_resume(rid, db=self.db)  # says now, in one line, why it cannot be resumed
        self._children = [c for c in self._children if c.poll() is None]
        child = subprocess.Popen(
            # `--`: a run id from the store is never read as an option, whatever it holds
            [sys.executable, "-m", "chronum", "resume", "--db", str(self.db), "-q", "--", rid],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd=str(self.db.parent), start_new_session=True)
        self._children.append(child)
        return {"run_id": rid, "result": "resuming", "pid": child.pid,
                "message": f"resuming run {rid} in process {child.pid}"}

    def metrics(self, request: Request) -> Any:
        from ..exporters.prometheus import CONTENT_TYPE, StepCache, exposition

        # A connection of its own: the first scrape of a big store reads every step, and the
        # pages must not wait for it behind the store's lock.
        with self._metrics_lock:
            if self._metrics is None:
                self._metrics = (connect(str(self.db)), StepCache())
            conn, cache = self._metrics
            return Response(exposition(conn, cache), media_type=CONTENT_TYPE)

    # -- the WebSocket ----------------------------------------------------------------------

    async def ws_events(self, ws: WebSocket) -> None:
        """Every event as the store records it, optionally of one ``run`` or ``flow``;
        ``after=SEQ`` (with ``run``) first sends the run's recorded events past SEQ.

        A message holds the events one poll found, one JSON object a line (as
        ``--events-jsonl``): a message per event would cost a send per event and client,
        which on a busy run competes with the runner for the machine."""
        if not self.guard.origin_ok(ws.headers.get("origin"), ws.headers.get("host")):
            await ws.close(code=1008)
            return
        authorized = self.guard.bearer_ok(ws.headers.get("authorization"))
        q = ws.query_params
        run, flow = q.get("run") or None, q.get("flow") or None
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        seen = {"seq": -1}

        def listener(batch: list[tuple[dict[str, Any], str]]) -> None:
            texts = []
            for event, text in batch:
                if run is not None and event["run_id"] != run:
                    continue
                if flow is not None and self.follower.flow_of(event["run_id"]) != flow:
                    continue
                if run is not None and event["seq"] <= seen["seq"]:
                    continue  # already sent from the backlog
                texts.append(text)
            if not texts:
                return
            if queue.qsize() >= MAX_BEHIND:
                queue.put_nowait(None)
                return
            # One message per poll: the events committed together, one JSON object a line.
            queue.put_nowait("\n".join(texts))

        # Listening from before the handshake: a client that starts a run once connected
        # gets all of it. Nothing is sent before the token is checked.
        remove = self.follower.add(listener)
        try:
            await ws.accept()
            if not authorized:
                try:
                    hello = await asyncio.wait_for(ws.receive_json(), 10)
                except (TimeoutError, ValueError, WebSocketDisconnect):
                    hello = None
                if not isinstance(hello, dict) or not self.guard.token_ok(hello.get("token")):
                    with contextlib.suppress(Exception):
                        await ws.close(code=1008, reason="a valid token is required")
                    return
            if run is not None and q.get("after") is not None:
                after = _int(q.get("after"), 0, 0, 10**12)
                rows = await run_in_threadpool(self._backlog, run, after)
                if rows:
                    seen["seq"] = rows[-1]["seq"]
                    await ws.send_text("\n".join(json.dumps(row, separators=(",", ":"))
                                                 for row in rows))
            await self._pump(ws, queue)
        finally:
            remove()

    def _backlog(self, run_id: str, after: int) -> list[dict[str, Any]]:
        try:
            events = self.store.events(run_id)
        except RunNotFoundError:
            return []
        return [{"kind": e["kind"], "run_id": run_id, "at": e["at"], "step": e["step"],
                 "attempt": e["attempt"], "data": e["data"], "seq": e["seq"]}
                for e in events if e["seq"] > after]

    async def _pump(self, ws: WebSocket, queue: asyncio.Queue[str | None]) -> None:
        async def receive() -> None:
            with contextlib.suppress(WebSocketDisconnect):
                while True:
                    await ws.receive_text()

        reader = asyncio.ensure_future(receive())
        try:
            while not reader.done():
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, reader},
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    return
                text = getter.result()
                if text is None:
                    await ws.close(code=1013, reason="fell too far behind; reconnect "
                                                     "with after=SEQ")
                    return
                await ws.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        finally:
            reader.cancel()

    # -- pages ------------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    def close(self) -> None:
        self.follower.close()
        if self._metrics is not None:
            self._metrics[0].close()
        self.store.close()


def make_app(db: Path, guard: Guard, *, poll_s: float = 0.05) -> Starlette:
    server = Server(db, guard, poll_s=poll_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.ensure_future(server.follower.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            server.close()

    api = server.api
    routes = [
        Route("/", server.page),
        Route("/runs/{run_id}", server.page),
        Route("/flows/{flow:path}", server.page),
        Route("/api/runs", api(server.runs)),
        Route("/api/flows", api(server.flows)),
        Route("/api/flows/{flow:path}", api(server.flow)),
        Route("/api/runs/{run_id}", api(server.run)),
        Route("/api/runs/{run_id}/steps", api(server.steps)),
        Route("/api/runs/{run_id}/attempts", api(server.attempts)),
        Route("/api/runs/{run_id}/events", api(server.events)),
        Route("/api/runs/{run_id}/graph", api(server.graph)),
        Route("/api/runs/{run_id}/timeline", api(server.timeline)),
        Route("/api/runs/{run_id}/logs/{step:path}", api(server.logs)),
        Route("/api/runs/{run_id}/cancel", api(server.cancel, action=True), methods=["POST"]),
        Route("/api/runs/{run_id}/resume", api(server.resume, action=True), methods=["POST"]),
        Route("/metrics", api(server.metrics)),
        WebSocketRoute("/ws/events", server.ws_events),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(_Headers, guard=guard)
    app.state.server = server
    return app
