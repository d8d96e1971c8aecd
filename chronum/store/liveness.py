"""Is the process that started a run still alive?

A pid alone is not enough: pids are reused, so a run is tied to its runner by (host, pid, start
token). The start token is the process start time from ``/proc/<pid>/stat`` (field 22, in clock
ticks since boot), which differs for any later process that happens to get the same pid. Where
``/proc`` is missing (macOS) the token is ``None`` and only the pid is checked.
"""

from __future__ import annotations

import os
from functools import cache

__all__ = ["host_name", "is_alive", "start_token"]


@cache
def host_name() -> str:
    """This machine's name (what ``socket.gethostname`` reads, without the socket module)."""
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (the command name may contain spaces and parentheses)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()


def start_token(pid: int | None = None) -> str | None:
    """The start time of ``pid`` (this process by default), or None when it cannot be read."""
    fields = _stat_fields(os.getpid() if pid is None else pid)
    if fields is None or len(fields) < 20:
        return None
    return fields[19]  # field 22 overall; fields[0] is field 3 (state)


def is_alive(pid: int, token: str | None) -> bool:
    """True when ``pid`` runs on this host and is the same process that recorded ``token``."""
    if pid <= 0:
        return False
    fields = _stat_fields(pid)
    if fields is not None:
        if fields[0] in ("Z", "X"):  # a zombie has finished; only its exit status remains
            return False
        return token is None or len(fields) < 20 or fields[19] == token
    if os.path.isdir("/proc/self"):
        return False  # /proc works here, so the pid is gone
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True
