"""Step logs: one file per step beside the database, and a bounded tail for the database row.

A step may print gigabytes, so nothing here grows with the output: lines go straight to an
open file (through its fixed-size buffer) and only the last ``TAIL_LINES`` lines, at most
``TAIL_BYTES`` characters, are kept in memory for the ``log_tail`` column. Both caps can be
changed with ``CHRONUM_LOG_TAIL_LINES`` and ``CHRONUM_LOG_TAIL_BYTES``; the file is always whole.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from ..errors import UsageError

__all__ = ["CUT_MARK", "TAIL_BYTES", "TAIL_LINES", "LogWriter", "relative_log_path", "tail_limits"]

TAIL_LINES = 100
TAIL_BYTES = 16 * 1024
#: The most a tail may keep: it lives in memory for every running step, and in a database row.
MAX_TAIL_LINES = 100_000
MAX_TAIL_BYTES = 16 * 1024 * 1024
#: Starts a line of the tail that was too long to keep whole; what follows is its end.
CUT_MARK = "…[cut] "


def tail_limits(environ: Mapping[str, str] = os.environ) -> tuple[int, int]:
    """(lines, characters) of each step's log kept in the database."""
    limits = []
    for name, default, most in (("CHRONUM_LOG_TAIL_LINES", TAIL_LINES, MAX_TAIL_LINES),
                                ("CHRONUM_LOG_TAIL_BYTES", TAIL_BYTES, MAX_TAIL_BYTES)):
        text = environ.get(name, "").strip()
        try:
            value = int(text) if text else default
        except ValueError:
            raise UsageError(f"{name} must be a whole number, got {text[:40]!r}") from None
        if not 0 <= value <= most:
            raise UsageError(f"{name} must be between 0 and {most}, got {text[:40]}")
        limits.append(value)
    return limits[0], limits[1]


def relative_log_path(run_id: str, step: str) -> Path:
    """Where a step's log lives, relative to the folder of the database."""
    if "/" in run_id or "\\" in run_id or run_id in ("", ".", ".."):
        raise ValueError(f"run id {run_id!r} cannot name a log folder")
    if "/" in step or "\\" in step or not step:
        raise ValueError(f"step name {step!r} cannot name a log file")
    return Path("logs", run_id, f"{step}.log")


class LogWriter:
    """Appends one step's lines to its file and remembers a bounded tail."""

    __slots__ = ("_file", "_max_chars", "_max_lines", "_tail", "_tail_chars", "dirty", "failed",
                 "path", "wrote")

    def __init__(self, path: Path, tail_lines: int = TAIL_LINES,
                 tail_chars: int = TAIL_BYTES) -> None:
        self.path = path
        self._max_lines = tail_lines
        self._max_chars = tail_chars
        self._file: TextIO | None = None
        self._tail: deque[str] = deque()
        self._tail_chars = 0
        self.dirty = False
        #: True once anything was written, so the step has a log file.
        self.wrote = False
        #: Why the file could not be written; later lines are refused with the same error.
        self.failed: OSError | None = None

    def _open(self) -> TextIO:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(  # noqa: SIM115 - kept open for the whole step on purpose
                self.path, "a", encoding="utf-8", errors="surrogateescape", newline="\n"
            )
        return self._file

    def write(self, line: str) -> None:
        if self.failed is not None:
            raise self.failed
        try:
            self._open().write(line + "\n")
        except OSError as exc:
            self._fail(exc)
            raise
        self.dirty = self.wrote = True
        self._remember(line)

    def _fail(self, exc: OSError) -> None:
        """The file cannot be written (a full disk, ``ulimit -f``, a name too long): close it
        without its buffer, so closing later neither fails again nor keeps a descriptor; the
        tail says the log is incomplete, and why."""
        self.failed = exc
        file, self._file = self._file, None
        self.dirty = False
        if file is not None:
            with contextlib.suppress(OSError):  # the same error, from the buffer it held
                file.close()
        self._remember(f"chronum: the log file could not be written: {exc.strerror or exc}")

    def _remember(self, line: str) -> None:
        budget = self._max_chars - 1  # the newline that joins lines in the tail counts too
        if len(line) > budget:
            # Keep the line's end, which says how a step ended more often than its start,
            # and mark it cut so nobody mistakes it for the whole line.
            keep = budget - len(CUT_MARK)
            line = CUT_MARK + line[-keep:] if keep > 0 else line[-budget:] if budget > 0 else ""
        self._tail.append(line)
        self._tail_chars += len(line) + 1
        while self._tail and (len(self._tail) > self._max_lines
                              or self._tail_chars > self._max_chars):
            self._tail_chars -= len(self._tail.popleft()) + 1

    @property
    def tail(self) -> str:
        return "\n".join(self._tail)

    def flush(self) -> None:
        """Push buffered lines to the OS so other processes can read the log while it grows."""
        if self._file is not None and self.dirty:
            try:
                self._file.flush()
            except OSError as exc:
                self._fail(exc)
                raise
        self.dirty = False

    def close(self) -> None:
        """Close the file; it is closed even when flushing its last lines fails (a full disk):
        the OSError is raised after, once."""
        file, self._file = self._file, None
        self.dirty = False
        if file is not None:
            file.close()
