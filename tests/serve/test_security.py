"""Who may talk to `chronum serve`: token, constant-time comparison, origins, hosts, binds,
log paths, and secrets."""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chronum.serve.security import Guard

from .conftest import Served


@pytest.mark.parametrize("path", ["/api/runs", "/api/flows", "/api/runs/last/steps",
                                  "/metrics", "/api/runs/last/logs/a"])
def test_every_api_call_needs_the_token(served: Served, path: str):
    for token in ("", "wrong-token-0000", served.token + "x", served.token[:-1]):
        status, _, body = served.request(path, token=token)
        assert status == 401, (token, status)
        assert b"token" in body
    status, _, _ = served.request(path, headers={"Authorization": f"Basic {served.token}"},
                                  token="")
    assert status == 401


def test_actions_need_the_token_and_a_confirmation(served: Served):
    flow = served.write("f.yaml", "name: f\nsteps:\n  - name: a\n    run: 'exit 1'\n")
    served.run(flow)
    rid = served.get("/api/runs")["runs"][0]["run_id"]
    status, _, _ = served.request(f"/api/runs/{rid}/resume", method="POST", token="",
                                  body={"confirm": rid})
    assert status == 401
    status, body = served.post(f"/api/runs/{rid}/resume", {})
    assert status == 400 and "confirm" in body["error"]
    status, body = served.post(f"/api/runs/{rid}/cancel", {"confirm": rid})
    assert status == 409 and "failed" in body["error"]
    status, _, _ = served.request(f"/api/runs/{rid}/cancel", method="POST",
                                  body={"confirm": rid},
                                  headers={"Origin": "http://evil.example"})
    assert status == 403


def test_the_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch):
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    guard = Guard("s3cret-token", "127.0.0.1", 8765)
    assert guard.bearer_ok("Bearer s3cret-token")
    assert not guard.bearer_ok("Bearer s3cret-tokem")
    assert not guard.token_ok("s")
    assert not guard.token_ok(None)
    assert len(calls) == 4  # every check, right or wrong, long or short, went through it


def test_websockets_need_the_token_and_the_pages_origin(served: Served):
    import websockets

    async def attempt(headers: dict[str, str], hello: str | None) -> str:
        try:
            async with websockets.connect(f"ws://127.0.0.1:{served.port}/ws/events",
                                          additional_headers=headers) as ws:
                if hello is not None:
                    await ws.send(hello)
                try:
                    await asyncio.wait_for(ws.recv(), 2)
                except TimeoutError:
                    return "open"
                return "message"
        except websockets.exceptions.InvalidStatus as exc:
            return f"refused {exc.response.status_code}"
        except websockets.exceptions.ConnectionClosed as exc:
            return f"closed {exc.rcvd.code if exc.rcvd else None}"

    own = f"http://127.0.0.1:{served.port}"
    async def every() -> list[str]:
        return list(await asyncio.gather(
            attempt({"Origin": own}, json.dumps({"token": served.token})),
            attempt({"Origin": own}, json.dumps({"token": "nope-nope-nope"})),
            attempt({"Origin": "http://evil.example", "Authorization": f"Bearer {served.token}"},
                    None),
            attempt({"Origin": f"http://localhost:{served.port + 1}"},
                    json.dumps({"token": served.token})),
            attempt({"Authorization": f"Bearer {served.token}"}, None),
        ))

    results = asyncio.run(every())
    assert results[0] == "open"  # authorized: waits for events
    assert results[1] == "closed 1008"
    assert results[2].startswith("refused 403")
    assert results[3].startswith("refused 403")
    assert results[4] == "open"


def test_another_host_name_is_not_answered(served: Served):
    status, _, _ = served.request("/", headers={"Host": "attacker.example"})
    assert status == 421
    status, headers, _ = served.request("/", headers={"Host": f"localhost:{served.port}"})
    assert status == 200
    assert "script-src 'self'" in headers["content-security-policy"]


def test_a_public_bind_needs_a_chosen_token(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "CHRONUM_SERVE_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "chronum", "serve", "--db",
                           str(tmp_path / "c.db"), "--host", "0.0.0.0"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--token" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_log_paths_never_leave_the_log_folder(served: Served):
    flow = served.write("f.yaml", "name: f\nsteps:\n  - name: a\n    run: echo hi\n")
    served.run(flow)
    rid = served.get("/api/runs")["runs"][0]["run_id"]
    (served.db.parent / "secret.txt").write_text("not for you")
    for step in ("..%2F..%2Fsecret.txt", "../../secret.txt", "%2E%2E", "a%2F..%2F..%2Fruns.db",
                 "..", "nope"):
        status, _, body = served.request(f"/api/runs/{rid}/logs/{step}")
        assert status in (400, 404), (step, status)
        assert b"not for you" not in body and b"SQLite" not in body
    assert served.get(f"/api/runs/{rid}/logs/a")["text"] == "hi\n"
    # a log file swapped for a link out of the folder is refused too
    log = served.db.parent / "logs" / rid / "a.log"
    log.unlink()
    log.symlink_to(served.db.parent / "secret.txt")
    status, _, body = served.request(f"/api/runs/{rid}/logs/a")
    assert status == 400 and b"not for you" not in body


def test_secrets_never_reach_the_api_or_the_websocket(served: Served):
    secret = "hunter2-very-secret-value"
    flow = served.write("s.yaml", """
        name: sec
        secrets: [API_TOKEN]
        steps:
          - name: leak
            run: 'echo "token is $API_TOKEN"; echo "$API_TOKEN" >&2; exit 1'
    """)

    async def watch() -> list[str]:
        import websockets

        texts = []
        async with websockets.connect(
                f"ws://127.0.0.1:{served.port}/ws/events",
                additional_headers={"Authorization": f"Bearer {served.token}"}) as ws:
            proc = await asyncio.to_thread(served.run, flow, env={"API_TOKEN": secret})
            assert proc.returncode == 1
            while True:
                text = await asyncio.wait_for(ws.recv(), 30)
                texts.append(text)
                if '"run.finished"' in text:
                    return texts

    texts = asyncio.run(watch())
    rid = served.get("/api/runs")["runs"][0]["run_id"]
    seen = "".join(texts)
    for path in ("/api/runs", f"/api/runs/{rid}", f"/api/runs/{rid}/steps",
                 f"/api/runs/{rid}/attempts", f"/api/runs/{rid}/events",
                 f"/api/runs/{rid}/logs/leak", f"/api/runs/{rid}/timeline", "/metrics"):
        status, _, body = served.request(path)
        assert status == 200
        seen += body.decode()
    assert "token is ***" in seen
    assert secret not in seen
