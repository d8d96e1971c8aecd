"""Run one subprocess for a step: stream its output, stop its whole process tree.

Every step process starts in its own session, hence its own process group, so the whole tree it
spawns can be signalled at once (DESIGN §3); what leaves the group (``timeout CMD``, ``set -m``
jobs, ``setsid`` daemons) is found by ``containment``. Output is consumed by a
``SubprocessProtocol`` as the event loop reads it: no reader tasks, no ``StreamReader`` line
limit, and memory bounded by one partial line (at most ``MAX_LINE`` bytes) per stream, however
much the step prints.

Nothing outlives the step: when the leader exits, whatever is left of its tree (a forgotten
``sleep 100 &``, a daemon) gets SIGTERM, then SIGKILL after ``grace`` seconds; when the caller
cancels, the whole tree, leader included, is stopped the same way. A step with ``detach: allow``
keeps the processes that left its group; they are named in its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import ChainMap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from subprocess import DEVNULL, PIPE

from . import containment
from .base import LogSink

__all__ = ["MAX_LINE", "describe_exit", "run_process"]

#: Longer lines are delivered in pieces of this many bytes. A piece goes to ``log.piece`` when
#: the sink has one (the engine's does, to mask a secret cut in two), else to ``log``.
MAX_LINE = 64 * 1024

#: After the leader exited and its group was killed, how long to wait for the pipes to close.
#: Only a process that escaped the group (``setsid``, a daemon) can hold them open that long.
_DRAIN_TIMEOUT = 1.0

_STREAMS = {1: "stdout", 2: "stderr"}


def describe_exit(code: int) -> str:
    """Say how a process ended, from a shell-convention exit code (``128 + signum`` = signal)."""
    if code > 128:
        try:
            return f"killed by signal {signal.Signals(code - 128).name}"
        except ValueError:
            pass
    if code == 127:
        return "exited with code 127 (command not found)"
    return f"exited with code {code}"


def _exit_code(returncode: int) -> int:
    # asyncio reports death by signal N as -N; shells (and users) expect 128 + N.
    return 128 - returncode if returncode < 0 else returncode


def _char_boundary(data: bytes, cut: int) -> int:
    """Move ``cut`` back so it does not split a UTF-8 sequence (continuation bytes are 10xxxxxx)."""
    floor = max(cut - 3, 1)
    pos = cut
    while pos > floor and (data[pos] & 0xC0) == 0x80:
        pos -= 1
    return pos if (data[pos] & 0xC0) != 0x80 else cut


class _LineSplitter:
    """Bytes in, complete decoded lines out; keeps at most ``MAX_LINE`` bytes of a partial line."""

    __slots__ = ("_emit", "_partial", "_piece", "_stream")

    def __init__(self, stream: str, log: LogSink) -> None:
        self._stream = stream
        self._emit = log
        self._piece: LogSink = getattr(log, "piece", log)
        self._partial = b""

    def _line(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        while len(line) > MAX_LINE:
            cut = _char_boundary(line, MAX_LINE)
            self._piece(self._stream, line[:cut].decode("utf-8", "replace"))
            line = line[cut:]
        self._emit(self._stream, line.decode("utf-8", "replace"))

    def feed(self, data: bytes) -> None:
        if self._partial:
            data = self._partial + data
        *lines, rest = data.split(b"\n")
        for line in lines:
            self._line(line)
        while len(rest) > MAX_LINE:
            cut = _char_boundary(rest, MAX_LINE)
            self._piece(self._stream, rest[:cut].decode("utf-8", "replace"))
            rest = rest[cut:]
        self._partial = rest

    def flush(self) -> None:
        """Deliver a final line that had no newline."""
        if self._partial:
            rest, self._partial = self._partial, b""
            self._line(rest)


class _StepProtocol(asyncio.SubprocessProtocol):
    def __init__(self, log: LogSink) -> None:
        self.splitters = {fd: _LineSplitter(name, log) for fd, name in _STREAMS.items()}
        self.exited = asyncio.Event()
        self.pipes_closed = asyncio.Event()
        self._open = set(_STREAMS)

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if isinstance(data, bytes):
            self.splitters[fd].feed(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open.discard(fd)
        if fd in self.splitters:
            self.splitters[fd].flush()
        if not self._open:
            self.pipes_closed.set()

    def process_exited(self) -> None:
        self.exited.set()

    def flush(self) -> None:
        for splitter in self.splitters.values():
            splitter.flush()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    # The group may be gone already (ESRCH), or hold a process we may not signal (EPERM).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _flat(env: Mapping[str, str]) -> dict[str, str]:
    """A plain dict of ``env``; the engine's layered ``ChainMap`` is merged at C speed (a
    ``dict(chain_map)`` looks every key up through every layer, in Python)."""
    if isinstance(env, ChainMap):
        flat: dict[str, str] = {}
        for layer in reversed(env.maps):
            flat.update(layer)
        return flat
    return dict(env)


async def _spawn(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path, protocol: _StepProtocol, token: str
) -> asyncio.SubprocessTransport | int:
    """Start the process; a launch failure becomes a logged line and an exit code.

    If cancelled while starting, asyncio itself kills and reaps the new leader; it has had no
    time to start children of its own.
    """
    loop = asyncio.get_running_loop()
    flat = _flat(env)
    flat[containment.TOKEN_VAR] = token  # inherited by every descendant, even a daemon
    if not cwd.is_dir():
        protocol.splitters[2].feed(f"chronum: working directory does not exist: {cwd}\n".encode())
        return 1
    try:
        transport, _ = await loop.subprocess_exec(
            lambda: protocol,
            *argv,
            stdin=DEVNULL,
            stdout=PIPE,
            stderr=PIPE,
            env=flat,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        if exc.filename is not None and Path(exc.filename) == cwd:
            message, code = f"working directory does not exist: {cwd}", 1
        else:
            message, code = f"command not found: {argv[0]}", 127
    except PermissionError:
        message, code = f"permission denied: {argv[0]}", 126
    except OSError as exc:
        message, code = f"cannot run {argv[0]}: {exc.strerror or exc}", 126
    else:
        return transport
    protocol.splitters[2].feed(f"chronum: {message}\n".encode())
    return code


async def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log: LogSink,
    grace: float = 5.0,
    detach: bool = False,
    on_spawn: Callable[[int], None] | None = None,
) -> int:
    """Run ``argv`` to completion and return its exit code (``128 + signum`` if killed).

    Output lines go to ``log("stdout" | "stderr", line)`` as they arrive. A program that cannot
    be started is reported on stderr with 127 (not found), 126 (not executable) or 1 (no such
    working directory); this never raises for that. On cancellation the whole tree is stopped
    (SIGTERM, ``grace`` seconds, SIGKILL) and reaped before ``CancelledError`` goes on.

    ``detach=True`` (``detach: allow``) stops only the process group, and names in the log
    what is left running outside it.
    """
    with containment.subreaper() as adopting:
        return await _run(argv, env, cwd, log, grace, detach, adopting, on_spawn)


async def _run(argv: Sequence[str], env: Mapping[str, str], cwd: Path, log: LogSink,
               grace: float, detach: bool, adopting: bool,
               on_spawn: Callable[[int], None] | None) -> int:
    protocol = _StepProtocol(log)
    token = containment.new_token(grace, detach=detach)
    started = containment.now_ticks()
    spawned = await _spawn(argv, env, cwd, protocol, token)
    if isinstance(spawned, int):
        return spawned
    transport = spawned
    pgid = transport.get_pid()  # the leader of a new session leads its process group
    if on_spawn is not None:  # recorded, so a resume can stop the group if the runner dies
        on_spawn(pgid)
    tree = containment.StepTree(pgid, token, adopting, started)
    try:
        await protocol.exited.wait()
        # Whatever is left must not outlive the step, nor keep the pipes open.
        if detach:
            _signal_group(pgid, signal.SIGKILL)
            left = tree.left()
            if left:
                log("stderr", f"chronum: detach: allow: left running: {containment.describe(left)}")
        else:
            await tree.stop(grace, protocol.exited)
        try:
            async with asyncio.timeout(_DRAIN_TIMEOUT):
                await protocol.pipes_closed.wait()
        except TimeoutError:
            log("stderr", "chronum: output still held open by a process outside the step's "
                "process group; stopped reading")
    except asyncio.CancelledError:
        if detach:
            await _stop_group(protocol, pgid, grace)
        else:
            await tree.stop(grace, protocol.exited)
        raise
    finally:
        transport.close()
        protocol.flush()
        tree.close()
        containment.reap_adopted()
    returncode = transport.get_returncode()
    assert returncode is not None  # process_exited has fired
    return _exit_code(returncode)


async def _stop_group(protocol: _StepProtocol, pgid: int, grace: float) -> None:
    """SIGTERM the group, give the leader ``grace`` seconds, then SIGKILL the group."""
    _signal_group(pgid, signal.SIGTERM)
    try:
        async with asyncio.timeout(grace):
            await protocol.exited.wait()
    except TimeoutError:
        pass
    finally:
        # Always, even if we are cancelled again: a child ignoring SIGTERM must not survive.
        _signal_group(pgid, signal.SIGKILL)
    await protocol.exited.wait()
