"""A store that cannot record a log line (a full disk) fails the run from the engine's own
stack: the error reaches the caller once, and no step goes on writing into the void."""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any

import pytest

from chronum.engine import run_flow
from chronum.eventbus import Event, EventBus, LogLine
from chronum.spec import loads


class DiskFull(OSError):
    pass


def test_a_log_line_the_store_cannot_write_fails_the_run() -> None:
    flow = loads(textwrap.dedent("""
        name: chatty
        steps:
          - name: flood
            run: yes line | head -n 20000
          - name: after
            run: echo after
            needs: [flood]
    """), filename="f.yaml")
    seen: list[Event] = []
    calls = 0

    def store(event: Event) -> None:
        nonlocal calls
        seen.append(event)
        if isinstance(event, LogLine):
            calls += 1
            raise DiskFull(28, "No space left on device")

    loop_errors: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: loop_errors.append(ctx))
        bus = EventBus()
        bus.subscribe(store, critical=True)
        await run_flow(flow, run_id="r1", bus=bus, grace=0.5)

    with pytest.raises(DiskFull):
        asyncio.run(main())
    assert calls == 1, "log lines went on after the store failed"
    assert loop_errors == []
    assert not any(e.step == "after" and e.kind == "step.started" for e in seen)
