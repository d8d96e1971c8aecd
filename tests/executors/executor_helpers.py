"""Helpers for executor tests: a recording log sink and probes of live processes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from chronum.executors.base import StepContext

#: The ``make_ctx`` fixture: ``make_ctx(log, *, env=, cwd=, inputs=, extras=, base_dir=)``.
MakeCtx = Callable[..., StepContext]


class Log:
    """A log sink that records lines per stream and can wake a test when a line arrives."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self._waiters: list[tuple[str, asyncio.Event]] = []

    def __call__(self, stream: str, line: str) -> None:
        self.lines.append((stream, line))
        for text, event in self._waiters:
            if line == text:
                event.set()

    def when(self, text: str) -> asyncio.Event:
        """An event set once a line equal to ``text`` has been logged."""
        event = asyncio.Event()
        self._waiters.append((text, event))
        return event

    @property
    def stdout(self) -> list[str]:
        return [line for stream, line in self.lines if stream == "stdout"]

    @property
    def stderr(self) -> list[str]:
        return [line for stream, line in self.lines if stream == "stderr"]


def gone_soon(pid: int, timeout: float = 5.0) -> bool:
    """True once ``pid`` is dead; a SIGKILLed process needs a moment to finish exiting."""
    import time

    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def alive(pid: int) -> bool:
    """True if ``pid`` is a running process. A zombie counts as dead: it has been killed and
    only waits for its parent (init, for orphans) to collect its status."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def zombie_children() -> list[int]:
    """Children of this test process that exited but were never reaped."""
    me = os.getpid()
    zombies = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == me and fields[0] == "Z":
            zombies.append(int(entry.name))
    return zombies


async def wait_for_file(path: Path) -> str:
    """Poll until a file written by a subprocess is complete (ends with a newline)."""
    while True:
        if path.exists():
            text = path.read_text()
            if text.endswith("\n"):
                return text
        await asyncio.sleep(0.01)
