"""Every error Chronum raises on purpose.

    ChronumError                 root; carries an exit code for the CLI
    ├── SpecError                a flow could not be loaded; holds every Problem found in one pass
    ├── UsageError               wrong arguments (CLI flags, API parameters)
    ├── RunNotFoundError         a run reference matched no run, or more than one
    ├── StoreError               the SQLite store cannot be opened or written
    ├── ExecutorError            an executor is unknown or cannot be constructed
    ├── DotNotFoundError         a picture needs graphviz's ``dot``, which is not installed
    ├── RunFailedError           ``Run.raise_for_status()`` on a run that did not succeed
    └── ConditionError           an ``if:`` condition that cannot be parsed (spec reports it)

A user mistake is always a ``ChronumError``: front ends print ``str(error)`` and exit with
``error.exit_code``, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

__all__ = [
    "ChronumError",
    "ConditionError",
    "DotNotFoundError",
    "ExecutorError",
    "Location",
    "Problem",
    "RunFailedError",
    "RunNotFoundError",
    "SpecError",
    "StepCancelledError",
    "StoreError",
    "UsageError",
]


class ChronumError(Exception):
    """Root of every error Chronum raises on purpose."""

    exit_code = 1


class Location(NamedTuple):
    """Where something is in a flow file: 1-based line and column, and the field path."""

    file: str
    line: int = 0
    col: int = 0
    path: str = ""

    def __str__(self) -> str:
        where = self.file
        if self.line and where.startswith("Cell In["):  # a notebook cell, as IPython names it
            return f"{where}, line {self.line}"
        if self.line:
            where += f":{self.line}:{self.col or 1}"
        return where


class Problem(NamedTuple):
    """One thing wrong with a flow: where, what, and how to fix it."""

    location: Location
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.location}: "
        if self.location.path:
            text += f"{self.location.path}: "
        text += self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class SpecError(ChronumError):
    """A flow has problems; all of them are listed, in file order."""

    exit_code = 2

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(
            problems, key=lambda p: (p.location.file, p.location.line, p.location.col)
        )
        super().__init__("\n".join(str(p) for p in self.problems))

    def _render_traceback_(self) -> list[str]:
        """What IPython shows for it: the problems, not a traceback through Chronum."""
        return [f"SpecError: {self}"]

    @classmethod
    def single(cls, file: str, message: str, hint: str = "", line: int = 0, col: int = 0,
               path: str = "") -> SpecError:
        return cls([Problem(Location(file, line, col, path), message, hint)])


class _OneLine:
    """A user's mistake shown by IPython (a notebook cell) as its message alone, as the CLI
    prints it: a traceback through Chronum's frames says nothing the message does not."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class UsageError(_OneLine, ChronumError):
    exit_code = 2


class RunNotFoundError(_OneLine, ChronumError):
    exit_code = 2


class StoreError(_OneLine, ChronumError):
    exit_code = 1


class ExecutorError(_OneLine, ChronumError):
    exit_code = 2


_DOT_HINT = (
    "graphviz's `dot` program was not found on PATH; install the graphviz package "
    "(Debian/Ubuntu: apt-get install graphviz, macOS: brew install graphviz, conda: "
    "conda install graphviz), or write DOT with `-o graph.dot`"
)


class DotNotFoundError(_OneLine, ChronumError):
    """``dot`` is not on PATH: SVG and PNG need it; DOT text (``-o graph.dot``) does not."""

    exit_code = 2

    def __init__(self, message: str = _DOT_HINT) -> None:
        super().__init__(message)


class RunFailedError(ChronumError):
    exit_code = 1


class StepCancelledError(ChronumError):
    """Raised by ``ctx.check()`` in a step function whose step was cancelled or timed out:
    the function stops there, and its thread ends."""


class ConditionError(ChronumError):
    """An ``if:`` condition that cannot be parsed: ``column`` is 1-based inside its text."""

    exit_code = 2

    def __init__(self, message: str, column: int, hint: str = "") -> None:
        self.message = message
        self.column = column
        self.hint = hint
        super().__init__(f"column {column}: {message}" + (f" ({hint})" if hint else ""))
