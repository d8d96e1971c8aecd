"""`/ws/events`: a WebSocket client sees every event of a run another process runs, in order."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from .conftest import Served


async def _collect(served: Served, query: str, until_finished: int,
                   started: asyncio.Event) -> list[dict[str, Any]]:
    import websockets

    got: list[dict[str, Any]] = []
    async with websockets.connect(
            f"ws://127.0.0.1:{served.port}/ws/events{query}",
            additional_headers={"Authorization": f"Bearer {served.token}"}) as ws:
        started.set()
        finished = 0
        while finished < until_finished:
            message = await asyncio.wait_for(ws.recv(), 60)
            for line in message.splitlines():  # the events of one poll, one a line
                event = json.loads(line)
                got.append(event)
                finished += event["kind"] == "run.finished"
    return got


def _stored(path: Path) -> list[dict[str, Any]]:
    """The --events-jsonl file without its log lines (logs are files, not stored events)."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [e for e in lines if e["kind"] != "step.log"]


def test_every_event_of_a_live_run_arrives_in_order(served: Served):
    steps = "".join(f"  - name: s{i}\n    run: 'echo {i}; sleep 0.0{i % 3}'\n"
                    for i in range(30))
    needs = ", ".join(f"s{i}" for i in range(30))
    flow = served.write("fan.yaml", f"name: fan\nmaxParallel: 4\nsteps:\n{steps}"
                                    f"  - name: join\n    run: 'true'\n    needs: [{needs}]\n")

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        ready_all, ready_fan = asyncio.Event(), asyncio.Event()
        everything = asyncio.ensure_future(_collect(served, "", 1, ready_all))
        only_fan = asyncio.ensure_future(_collect(served, "?flow=fan", 1, ready_fan))
        await ready_all.wait()
        await ready_fan.wait()
        proc = await asyncio.to_thread(served.run, flow, "--events-jsonl", "events.jsonl")
        assert proc.returncode == 0, proc.stderr
        return await everything, await only_fan

    everything, only_fan = asyncio.run(scenario())
    expected = _stored(served.folder / "events.jsonl")
    assert len(expected) > 60
    strip = [{k: v for k, v in e.items() if k != "seq"} for e in everything]
    assert strip == expected
    assert [e["seq"] for e in everything] == list(range(1, len(expected) + 1))
    assert only_fan == everything


def test_a_run_filter_and_after_replay_what_was_missed(served: Served):
    flow = served.write("f.yaml", "name: f\nsteps:\n  - name: a\n    run: 'true'\n"
                                  "  - name: b\n    run: 'true'\n    needs: [a]\n")
    other = served.write("g.yaml", "name: g\nsteps:\n  - name: x\n    run: 'true'\n")
    assert served.run(flow).returncode == 0
    rid = served.get("/api/runs")["runs"][0]["run_id"]
    assert served.run(other).returncode == 0
    stored = served.get(f"/api/runs/{rid}/events")

    async def replay() -> list[dict[str, Any]]:
        return await _collect(served, f"?run={rid}&after=2", 1, asyncio.Event())

    got = asyncio.run(replay())
    assert [e["seq"] for e in got] == [e["seq"] for e in stored[2:]]
    assert {e["run_id"] for e in got} == {rid}
