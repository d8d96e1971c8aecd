"""Find and stop every process a step started, also those that left its process group.

A step's leader starts a new session, so its process group is the first net (``killpg``). Three
ways out of that group, and what catches each (Linux, through ``/proc``):

* a new process group in the same session (coreutils ``timeout CMD``, bash ``set -m`` jobs):
  the process keeps the step's session id, which is the leader's pid;
* a new session (``setsid``, a double-forking daemon): the process keeps the step's token,
  ``CHRONUM_STEP_TOKEN`` in its environment, which every descendant inherits;
* orphans: while a step process runs, the runner is a child subreaper
  (``PR_SET_CHILD_SUBREAPER``), so an orphaned step process is re-parented to the runner instead
  of init, and stays in the runner's tree where the walk finds it. The runner reaps the ones it
  attributes to a step.

The walk starts from the leader's children and the runner's children, and takes a subtree when
its root belongs to the step (the leader itself, the step's session id, or the step's token).
A process started before the leader never belongs to the step, so a pid reused by an unrelated
process is not touched. Elsewhere (no ``/proc``), only the process group is contained.

When the runner itself is killed with SIGKILL, nothing in it runs any more: a small supervisor
process, started once per runner, waits for the runner's end (EOF on a pipe only the runner
holds) and stops every process carrying one of this runner's tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["TOKEN_VAR", "StepTree", "describe", "new_token", "now_ticks", "subreaper"]

#: Every step process gets this variable: whoever inherits it belongs to the step.
TOKEN_VAR = "CHRONUM_STEP_TOKEN"

_PROC = Path("/proc")
_PR_SET_CHILD_SUBREAPER = 36
_LINUX = sys.platform.startswith("linux") and _PROC.is_dir()

#: Runner children attributed to a step and left alive (``detach: allow``): reaped once they
#: exit, so they do not stay zombies of a long-lived runner (a notebook kernel).
_adopted: dict[int, int] = {}

#: The runner's own children that are known not to be orphans: the leaders of the step processes
#: running now, and the supervisor. The walk skips them without reading ``/proc``.
_known: set[int] = set()


class _Proc(NamedTuple):
    pid: int
    state: str
    ppid: int
    pgid: int
    sid: int
    start: int  # clock ticks since boot: with the pid, it names one process for ever


def _stat(pid: int) -> _Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2:].split()
    try:
        return _Proc(pid, fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3]),
                     int(fields[19]))
    except (IndexError, ValueError):
        return None


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()[:80] or "?"


def _environ_has(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            raw = fh.read()
    except OSError:  # gone, a zombie, or not ours to read
        return False
    return (b"\0" + raw).find(b"\0" + needle + b"\0") >= 0


def _children(pid: int) -> list[int]:
    """Children of every thread of ``pid`` (a child belongs to the thread that forked it)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                found.extend(map(int, fh.read().split()))
        except OSError:
            continue
    return found


def now_ticks() -> int:
    """The clock of ``/proc/PID/stat``'s start time (ticks since boot), less one tick: a process
    started after this call has a start time at least this."""
    if not _LINUX:
        return 0
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK")) - 1


def _start_of(pid: int) -> int:
    proc = _stat(pid)
    return proc.start if proc is not None else 0


# -- the runner as a subreaper, while step processes run -------------------------------------

_lock = threading.Lock()
_active = 0
_subreaper_ok: bool | None = None


_libc: Any = None


def _prctl(option: int, value: int) -> bool:
    global _libc
    try:
        if _libc is None:
            import ctypes

            _libc = ctypes.CDLL(None, use_errno=True)
        return int(_libc.prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def subreaper() -> Iterator[bool]:
    """The runner is a child subreaper while any step process runs; yields whether it is.

    Only while steps run, so orphans of unrelated children of a long-lived process (a notebook
    kernel's shell commands) still go to init at other times.
    """
    global _active, _subreaper_ok
    with _lock:
        if _active == 0 and _subreaper_ok is not False and _LINUX:
            _subreaper_ok = _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        _active += 1
        on = bool(_subreaper_ok) and _LINUX
    try:
        yield on
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _subreaper_ok:
                _prctl(_PR_SET_CHILD_SUBREAPER, 0)


# -- the supervisor, for a runner killed with SIGKILL ----------------------------------------

_SUPERVISOR = r"""
import os, sys, time
key, grace = sys.argv[1].encode(), float(sys.argv[2])
while os.read(0, 4096):
    pass
needle = b"\0CHRONUM_STEP_TOKEN=" + key + b"."
def tagged():
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/" + name + "/environ", "rb") as fh:
                    if needle in b"\0" + fh.read():
                        found.append(int(name))
            except OSError:
                pass
    return found
deadline = time.monotonic() + grace
sig = 15
while True:
    pids = tagged()
    if not pids:
        break
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    if sig == 9 and time.monotonic() > deadline + 5:
        break
    if time.monotonic() > deadline:
        sig = 9
    time.sleep(0.05)
"""

#: (the pid of the process that started it, its key); "" when it could not be started.
_supervisor_key: tuple[int, str] | None = None


def _supervisor(grace: float) -> str | None:
    """The key of this runner's supervisor, started on first use; None where there is none.

    A forked child of the runner starts its own: the parent's watches the parent.
    """
    global _supervisor_key
    with _lock:
        if not _LINUX:
            return None
        if _supervisor_key is not None and _supervisor_key[0] == os.getpid():
            return _supervisor_key[1] or None
        _supervisor_key = (os.getpid(), "")
        key = f"{os.getpid()}-{_random_hex(6)}"
        read_end, write_end = os.pipe()  # both close-on-exec: no step process inherits them
        try:
            pid = os.posix_spawn(
                sys.executable, [sys.executable, "-I", "-S", "-c", _SUPERVISOR, key, f"{grace:g}"],
                dict(os.environ),
                # It must not hold the runner's output open: a caller reading it to the end
                # would wait for the supervisor too.
                file_actions=[(os.POSIX_SPAWN_DUP2, read_end, 0),
                              (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                              (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)],
                setsid=True,
            )
        except (OSError, ValueError):  # no interpreter to start (a frozen application)
            os.close(write_end)
            return None
        finally:
            os.close(read_end)
        # The write end stays open for the life of this process: its close is the signal.
        _supervisor_key = (os.getpid(), key)
        _known.add(pid)
        return key


def new_token(grace: float, *, detach: bool) -> str:
    """A token for one step process; a detached step's is unknown to the supervisor."""
    key = None if detach else _supervisor(grace)
    return f"{key or 'free-' + str(os.getpid())}.{_random_hex(8)}"


def _random_hex(nbytes: int) -> str:
    """What ``secrets.token_hex`` returns, from the same source, without importing ``secrets``
    (and ``hmac`` with it) into every run."""
    return os.urandom(nbytes).hex()


# -- one step's tree -------------------------------------------------------------------------


class StepTree:
    """Every process of one step: its process group, session, descendants and token holders."""

    def __init__(self, leader: int, token: str, subreaper: bool, start: int) -> None:
        self.leader = leader
        self.start = start
        self.needle = f"{TOKEN_VAR}={token}".encode()
        self.subreaper = subreaper
        self._seen: dict[int, int] = {}
        _known.add(leader)

    def close(self) -> None:
        """The leader has been reaped: its pid is nobody's to skip any more."""
        _known.discard(self.leader)

    def processes(self, leader_alive: bool = True) -> list[_Proc]:
        """The step's processes other than the leader, alive or zombie."""
        if not _LINUX:
            return []
        me = os.getpid()
        # (pid, how it must be checked): "child" of a step process, "runner" child (the
        # session or the token), "scan" of every process (the session only: orphans went to
        # init, and other people's environments are none of our business).
        stack = [(pid, "child") for pid in _children(self.leader)] if leader_alive else []
        stack += [(pid, "runner") for pid in _children(me) if pid not in _known]
        if not self.subreaper:
            stack += [(int(n), "scan") for n in os.listdir(_PROC) if n.isdigit()]
        found: dict[int, _Proc] = {}
        # A runner child that is a zombie has no environment left to show the token: it is the
        # step's if it was seen alive as the step's, or led a session or group of the step's.
        zombies: list[_Proc] = []
        while stack:
            pid, how = stack.pop()
            if pid in found or pid == self.leader or pid == me:
                continue
            proc = _stat(pid)
            if proc is None or proc.start < self.start:
                continue
            if how != "child" and proc.sid != self.leader and (
                    how == "scan" or not _environ_has(pid, self.needle)):
                if proc.state == "Z" and how == "runner":
                    zombies.append(proc)
                continue
            found[pid] = proc
            stack.extend((c, "child") for c in _children(pid))
        if zombies:
            leaders = {p.sid for p in found.values()} | {p.pgid for p in found.values()}
            for proc in zombies:
                if self._seen.get(proc.pid) == proc.start or proc.pid in leaders:
                    found[proc.pid] = proc
        self._seen.update((p.pid, p.start) for p in found.values() if p.state != "Z")
        return list(found.values())

    def _reap(self, procs: Iterable[_Proc]) -> None:
        """Collect the zombies the runner adopted as subreaper (its own step leaders are
        asyncio's to collect, and never in this list)."""
        me = os.getpid()
        for proc in procs:
            if proc.state == "Z" and proc.ppid == me:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(proc.pid, os.WNOHANG)
                _adopted.pop(proc.pid, None)

    def _signal(self, procs: Iterable[_Proc], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.leader, sig)
        for proc in procs:
            if proc.state != "Z":
                _send(proc, sig)

    async def stop(self, grace: float, leader_done: asyncio.Event) -> None:
        """SIGTERM everything, SIGKILL what is left after ``grace``, until all is gone."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        sig = signal.SIGTERM
        signalled: set[int] = set()
        group_sent = False
        delay = 0.002
        try:
            while True:
                procs = self.processes(not leader_done.is_set())
                self._reap(procs)
                live = [p for p in procs if p.state != "Z"]
                if not live and leader_done.is_set():
                    return
                if not group_sent:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(self.leader, sig)
                    group_sent = True
                for proc in live:
                    if proc.pid not in signalled:
                        _send(proc, sig)
                        signalled.add(proc.pid)
                if sig is signal.SIGTERM and loop.time() >= deadline:
                    sig, signalled, group_sent = signal.SIGKILL, set(), False
                    continue
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
        except BaseException:
            # Cancelled again while stopping: nothing of the step may survive that either.
            procs = self.processes(not leader_done.is_set())
            if any(p.state != "Z" for p in procs) or not leader_done.is_set():
                self._signal(procs, signal.SIGKILL)
            self._reap(procs)
            raise

    def left(self) -> list[_Proc]:
        """What is still alive of the step (``detach: allow``), remembered to be reaped later."""
        procs = self.processes(leader_alive=False)
        self._reap(procs)
        live = [p for p in procs if p.state != "Z"]
        me = os.getpid()
        _adopted.update((p.pid, p.start) for p in live if p.ppid == me)
        return live


def reap_adopted() -> None:
    """Collect detached processes the runner adopted that have exited since."""
    me = os.getpid()
    for pid, start in list(_adopted.items()):
        proc = _stat(pid)
        if proc is None or proc.start != start:
            _adopted.pop(pid, None)
        elif proc.state == "Z" and proc.ppid == me:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            _adopted.pop(pid, None)


def _send(proc: _Proc, sig: signal.Signals) -> None:
    """Signal one process, through a pidfd where possible: the pidfd pins the process, and its
    start time is checked again through it, so a pid reused meanwhile is never signalled."""
    pidfd = -1
    with contextlib.suppress(OSError, AttributeError):
        pidfd = os.pidfd_open(proc.pid)
    try:
        if pidfd >= 0:
            if _start_of(proc.pid) != proc.start:
                return
            signal.pidfd_send_signal(pidfd, sig)
        else:
            os.kill(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def describe(procs: Iterable[_Proc]) -> str:
    """``pid 12 (sleep 100), pid 13 (...)`` for a log line."""
    return ", ".join(f"pid {p.pid} ({_command(p.pid)})" for p in procs)
