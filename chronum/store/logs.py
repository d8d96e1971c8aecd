"""Step logs: one file per step beside the database, and a bounded tail for the database row.

A step may print gigabytes, so nothing here grows with the output: lines go straight to an
open file (through its fixed-size buffer) and only the last ``TAIL_LINES`` lines, at most
``TAIL_BYTES`` characters, are kept in memory for the ``log_tail`` column.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import TextIO

__all__ = ["TAIL_BYTES", "TAIL_LINES", "LogWriter", "relative_log_path"]

TAIL_LINES = 100
TAIL_BYTES = 16 * 1024


def relative_log_path(run_id: str, step: str) -> Path:
    """Where a step's log lives, relative to the folder of the database."""
    if "/" in run_id or "\\" in run_id or run_id in ("", ".", ".."):
        raise ValueError(f"run id {run_id!r} cannot name a log folder")
    if "/" in step or "\\" in step or not step:
        raise ValueError(f"step name {step!r} cannot name a log file")
    return Path("logs", run_id, f"{step}.log")


class LogWriter:
    """Appends one step's lines to its file and remembers a bounded tail."""

    __slots__ = ("_file", "_tail", "_tail_chars", "dirty", "path", "wrote")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None
        self._tail: deque[str] = deque()
        self._tail_chars = 0
        self.dirty = False
        #: True once anything was written, so the step has a log file.
        self.wrote = False

    def _open(self) -> TextIO:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(  # noqa: SIM115 - kept open for the whole step on purpose
                self.path, "a", encoding="utf-8", errors="surrogateescape", newline="\n"
            )
        return self._file

    def write(self, line: str) -> None:
        self._open().write(line + "\n")
        self.dirty = self.wrote = True
        self._remember(line)

    def _remember(self, line: str) -> None:
        if len(line) > TAIL_BYTES:
            line = line[-TAIL_BYTES:]
        self._tail.append(line)
        self._tail_chars += len(line) + 1
        while len(self._tail) > TAIL_LINES or self._tail_chars > TAIL_BYTES:
            self._tail_chars -= len(self._tail.popleft()) + 1

    @property
    def tail(self) -> str:
        return "\n".join(self._tail)

    def flush(self) -> None:
        """Push buffered lines to the OS so other processes can read the log while it grows."""
        if self._file is not None and self.dirty:
            self._file.flush()
        self.dirty = False

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.dirty = False
