"""Processes that leave the step's process group are still stopped with the step (real processes).

Each scenario records the pids of what it started in files; the test asserts they are gone after
the step ends, times out or is cancelled, and kills any survivor itself in the end (only its own).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from executor_helpers import Log, alive, gone_soon, zombie_children

from chronum.executors.process import run_process

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}

# Three ways out of the group, each writing the pid of the process that escaped to a file:
# coreutils `timeout` makes its own process group; bash `set -m` gives each job its own group;
# a double fork through setsid makes a daemon in a new session, orphaned.
ESCAPES = {
    "timeout": "timeout 100 sh -c 'echo $$ > escaped.pid; exec sleep 100' &\n",
    "set -m": "bash -c 'set -m; sh -c \"echo \\$\\$ > escaped.pid; exec sleep 100\" & "
              "sleep 0.2' &\n",
    "setsid": "setsid sh -c 'sh -c \"echo \\$\\$ > escaped.pid; exec sleep 100\" &' &\n",
}
WAIT = "while [ ! -s escaped.pid ]; do sleep 0.01; done\n"


@pytest.fixture
def escaped(tmp_path: Path) -> Iterator[Path]:
    """The pid file; whatever it names is killed after the test, should it have survived."""
    path = tmp_path / "escaped.pid"
    yield path
    if path.exists() and path.read_text().strip():
        pid = int(path.read_text())
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def _needs(name: str) -> None:
    tool = {"timeout": "timeout", "set -m": "bash", "setsid": "setsid"}[name]
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


def _group_and_session(pid: int) -> tuple[int, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[2]), int(fields[3])


@pytest.mark.parametrize("how", list(ESCAPES))
def test_a_process_that_left_the_group_is_stopped_when_the_step_ends(
        how: str, log: Log, tmp_path: Path, escaped: Path) -> None:
    _needs(how)
    script = ESCAPES[how] + WAIT + "while [ ! -e go ]; do sleep 0.01; done\necho done\n"

    async def scenario() -> tuple[int, tuple[int, int]]:
        task = asyncio.create_task(run_process(["/bin/sh", "-c", script], env=ENV,
                                               cwd=tmp_path, log=log, grace=0.5))
        while not escaped.exists() or not escaped.read_text().endswith("\n"):
            await asyncio.sleep(0.01)
        pid = int(escaped.read_text())
        assert alive(pid)
        where = _group_and_session(pid)
        (tmp_path / "go").touch()
        return await task, where

    code, (group, session) = asyncio.run(scenario())
    pid = int(escaped.read_text())
    assert code == 0
    assert gone_soon(pid, 2.0), f"{how}: pid {pid} outlived the step"
    assert log.stdout == ["done"]
    assert zombie_children() == []
    # it really had left the step's group (the leader's pid is neither its group nor, for
    # setsid, its session), so the group kill alone could not have reached it
    assert group != session or how == "setsid"


@pytest.mark.parametrize("how", list(ESCAPES))
def test_a_process_that_left_the_group_is_stopped_on_cancel(
        how: str, log: Log, tmp_path: Path, escaped: Path) -> None:
    _needs(how)
    script = ESCAPES[how] + WAIT + "echo ready\nsleep 100\n"

    async def scenario() -> None:
        ready = log.when("ready")
        task = asyncio.create_task(run_process(["/bin/sh", "-c", script], env=ENV,
                                               cwd=tmp_path, log=log, grace=0.5))
        await ready.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    pid = int(escaped.read_text())
    assert gone_soon(pid, 2.0), f"{how}: pid {pid} outlived the cancelled step"
    assert zombie_children() == []


def test_an_escaped_process_ignoring_sigterm_is_killed_after_the_grace(
        log: Log, tmp_path: Path, escaped: Path) -> None:
    script = ("setsid sh -c 'trap \"\" TERM; echo $$ > escaped.pid; "
              "while :; do sleep 0.05; done' &\n" + WAIT)
    assert asyncio.run(run_process(["/bin/sh", "-c", script], env=ENV, cwd=tmp_path, log=log,
                                   grace=0.3)) == 0
    assert gone_soon(int(escaped.read_text()), 3.0)


def test_detach_allow_leaves_the_daemon_running_and_names_it(
        log: Log, tmp_path: Path, escaped: Path) -> None:
    script = ESCAPES["setsid"] + WAIT + "echo done\n"
    code = asyncio.run(run_process(["/bin/sh", "-c", script], env=ENV, cwd=tmp_path, log=log,
                                   grace=0.5, detach=True))
    pid = int(escaped.read_text())
    assert code == 0
    assert alive(pid)
    notes = [line for line in log.stderr if line.startswith("chronum: detach: allow")]
    assert notes and f"pid {pid} (sleep 100)" in notes[0], log.stderr


def test_each_step_stops_only_its_own_processes(log: Log, tmp_path: Path) -> None:
    # Two steps at once, each with a setsid daemon: the first step ends while the second runs;
    # the second's daemon must survive the first's walk, and go with the second.
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    daemon = "setsid sh -c 'sh -c \"echo \\$\\$ > escaped.pid; exec sleep 100\" &' &\n" + WAIT

    async def scenario() -> tuple[int, int]:
        second = asyncio.create_task(run_process(
            ["/bin/sh", "-c", daemon + "while [ ! -e ../go ]; do sleep 0.01; done\n"],
            env=ENV, cwd=b, log=log, grace=0.5))
        while not (b / "escaped.pid").exists() or not (b / "escaped.pid").read_text():
            await asyncio.sleep(0.01)
        assert await run_process(["/bin/sh", "-c", daemon], env=ENV, cwd=a, log=log,
                                 grace=0.5) == 0
        pid_b = int((b / "escaped.pid").read_text())
        assert alive(pid_b), "the first step's end stopped the second step's daemon"
        (tmp_path / "go").touch()
        assert await second == 0
        return int((a / "escaped.pid").read_text()), pid_b

    try:
        pid_a, pid_b = asyncio.run(scenario())
        assert gone_soon(pid_a, 2.0)
        assert gone_soon(pid_b, 2.0)
    finally:
        for folder in (a, b):
            path = folder / "escaped.pid"
            if path.exists() and path.read_text().strip() and alive(int(path.read_text())):
                os.kill(int(path.read_text()), signal.SIGKILL)
