"""What a page from another origin, a rebound DNS name or a crafted request can get out of a
real ``chronum serve`` on 127.0.0.1: nothing but refusals."""

from __future__ import annotations

import asyncio
import http.client
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve.conftest import Served


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path)
    try:
        server.wait_ready()
        flow = server.write("f.yaml", "name: f\nsteps:\n  - name: a\n    run: echo hi\n")
        server.run(flow)
        yield server
    finally:
        server.stop()


def _raw(served: Served, method: str, path: str, headers: dict[str, str],
         body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    """A request exactly as written (urllib would normalise the path and the Host)."""
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, \
            response.read()
    finally:
        conn.close()


def test_static_files_never_leave_the_static_folder(served: Served) -> None:
    host = {"Host": f"127.0.0.1:{served.port}"}
    for path in ("/static/../app.py", "/static/..%2fapp.py", "/static/%2e%2e/app.py",
                 "/static/%2e%2e%2fapp.py", "/static/..%5capp.py", "/static//etc/passwd",
                 "/static/%2fetc%2fpasswd", "/static/....//app.py", "/static/.%2e/security.py",
                 "/../../../../etc/passwd", "/static/%00"):
        status, _, body = _raw(served, "GET", path, host)
        assert status in (400, 404, 405), (path, status)
        assert b"import" not in body and b"root:" not in body, path
    status, _, _ = _raw(served, "GET", "/static/app.js", host)
    assert status == 200


def test_rebound_and_odd_host_names_get_nothing(served: Served) -> None:
    port = served.port
    for host in ("attacker.example", f"attacker.example:{port}", f"127.0.0.1.nip.io:{port}",
                 f"localhost.attacker.example:{port}", f"127.0.0.1:{port}@attacker.example",
                 "", f"127.0.0.2:{port}"):
        status, _, body = _raw(served, "GET", "/api/runs",
                               {"Host": host, "Authorization": f"Bearer {served.token}"})
        assert status in (400, 421), (host, status)
        assert b"run_id" not in body


def test_other_origins_cannot_act_or_read(served: Served) -> None:
    rid = served.get("/api/runs")["runs"][0]["run_id"]
    host = f"127.0.0.1:{served.port}"
    for origin in ("null", "http://attacker.example", f"http://127.0.0.1:{served.port + 1}",
                   f"https://127.0.0.1:{served.port}", f"http://127.0.0.1:{served.port}.evil"):
        status, headers, _ = _raw(
            served, "POST", f"/api/runs/{rid}/resume",
            {"Host": host, "Origin": origin, "Authorization": f"Bearer {served.token}",
             "Content-Type": "application/json"}, json.dumps({"confirm": rid}).encode())
        assert status == 403, (origin, status)
        assert "access-control-allow-origin" not in headers
    # a CORS preflight is never granted, so a page cannot even ask with the header
    status, headers, _ = _raw(served, "OPTIONS", f"/api/runs/{rid}/cancel",
                              {"Host": host, "Origin": "http://attacker.example",
                               "Access-Control-Request-Method": "POST",
                               "Access-Control-Request-Headers": "authorization"})
    assert "access-control-allow-origin" not in headers
    assert "access-control-allow-headers" not in headers
    # a form post (the one cross-site request a browser sends without asking) has no token
    status, _, _ = _raw(served, "POST", f"/api/runs/{rid}/cancel",
                        {"Host": host, "Origin": f"http://{host}",
                         "Content-Type": "application/x-www-form-urlencoded"},
                        f"confirm={rid}".encode())
    assert status == 401
    status, _, _ = _raw(served, "GET", f"/api/runs/{rid}/cancel",
                        {"Host": host, "Authorization": f"Bearer {served.token}"})
    assert status == 405


def test_a_huge_body_without_the_token_is_refused_unread(served: Served) -> None:
    rid = served.get("/api/runs")["runs"][0]["run_id"]
    status, _, _ = _raw(served, "POST", f"/api/runs/{rid}/cancel",
                        {"Host": f"127.0.0.1:{served.port}", "Content-Type": "application/json"},
                        b"[" * (8 * 1024 * 1024))
    assert status == 401


def test_run_ids_and_flow_names_are_data_not_sql(served: Served) -> None:
    from urllib.parse import quote

    for text in ("' OR '1'='1", "%", "_", "1; DROP TABLE runs", "../../etc", "\u0000"):
        ref = quote(text, safe="")
        status, _, body = served.request(f"/api/runs/{ref}/steps")
        assert status in (400, 404), (ref, status, body[:200])
        status, _, body = served.request(f"/api/flows/{ref}")
        assert status in (200, 404), (ref, status)
        if status == 200:
            assert json.loads(body)["runs"] == []
    conn = sqlite3.connect(served.db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    finally:
        conn.close()


def test_a_websocket_from_another_origin_or_without_token_gets_no_events(
        served: Served) -> None:
    import websockets

    async def attempt(origin: str | None, hello: bytes | str | None) -> str:
        headers = {"Origin": origin} if origin else {}
        try:
            async with websockets.connect(f"ws://127.0.0.1:{served.port}/ws/events",
                                          additional_headers=headers,
                                          max_size=None) as ws:
                if hello is not None:
                    await ws.send(hello)
                try:
                    message = await asyncio.wait_for(ws.recv(), 3)
                except TimeoutError:
                    return "open"
                return f"message {message!r}"
        except websockets.exceptions.InvalidStatus as exc:
            return f"refused {exc.response.status_code}"
        except websockets.exceptions.ConnectionClosed as exc:
            return f"closed {exc.rcvd.code if exc.rcvd else None}"

    async def every() -> list[str]:
        own = f"http://127.0.0.1:{served.port}"
        return list(await asyncio.gather(
            attempt("null", json.dumps({"token": served.token})),
            attempt(own, "not json"),
            attempt(own, json.dumps(["token", served.token])),
            attempt(own, json.dumps({"token": served.token[:-1]})),
            attempt(own, "x" * (4 * 1024 * 1024)),
        ))

    results = asyncio.run(every())
    assert results[0].startswith("refused 403")
    assert all(r.startswith("closed") for r in results[1:]), results
