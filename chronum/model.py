"""The normalized flow: frozen dataclasses, no I/O.

A parser turns a document into these; the engine only ever sees these. Defaults from the flow
(``defaultRetry``, ``defaultTimeout``, ``backoff``) are already applied to every ``Step``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from .conditions import Condition
from .errors import Location

__all__ = [
    "RUN_STATES",
    "STEP_STATES",
    "Backoff",
    "Flow",
    "RetryPolicy",
    "Step",
]

Jitter = Literal["full", "equal", "none"]

#: Step states, as stored; these words never change meaning.
STEP_STATES = (
    "pending", "running", "retrying", "succeeded", "failed", "skipped", "upstream_failed",
    "cancelled", "cached",
)
#: Run states, as stored; these words never change meaning.
RUN_STATES = ("running", "succeeded", "failed", "cancelled", "interrupted")
#: A step whose attempt ran past its timeout ends with this code, like coreutils' timeout(1).
TIMEOUT_EXIT_CODE = 124

def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before attempt n+1: ``min(max, base * factor**(n-1))``, then jitter."""

    base: float = 1.0
    factor: float = 2.0
    max: float = 60.0
    jitter: Jitter = "full"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``limit`` retries after the first attempt; only for ``exit_codes`` when given."""

    limit: int = 0
    backoff: Backoff = field(default_factory=Backoff)
    exit_codes: tuple[int, ...] | None = None
    #: ``onTimeout: false``: an attempt that ran past the step's timeout (exit code 124) is
    #: not retried.
    on_timeout: bool = True

    def should_retry(self, attempt: int, exit_code: int) -> bool:
        if attempt > self.limit:
            return False
        if exit_code == TIMEOUT_EXIT_CODE and not self.on_timeout:
            return False
        return self.exit_codes is None or exit_code in self.exit_codes


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    executor: str = "shell"
    run: str | None = None
    call: str | None = None
    needs: tuple[str, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    continue_on_error: bool = False
    env: Mapping[str, str] = field(default_factory=_empty)
    cwd: str | None = None
    shell: str | None = None
    #: Keys owned by the executor (``image:`` for docker, say), validated by it.
    options: Mapping[str, Any] = field(default_factory=_empty)
    #: Names of environment variables whose values the step gets and Chronum masks (``***``).
    secrets: tuple[str, ...] = ()
    location: Location | None = field(default=None, compare=False)
    #: ``cache:`` on the step; None follows the flow's (``Flow.cache``) and the run's options.
    cache: bool | None = None
    #: ``cacheKey:``: a free-form value the user changes to invalidate the step by hand.
    cache_key: str | None = None
    #: ``cacheFor:`` in seconds: an earlier result older than this is not reused.
    cache_for: float | None = None
    #: ``inputs:``: paths and globs (relative to the flow's folder) whose content is in the key.
    inputs: tuple[str, ...] = ()
    #: ``outputs:``: the files the step writes (declared output files, checked on reuse).
    output_files: tuple[str, ...] = ()
    #: ``if:``: the step runs only when this holds (``chronum.conditions``).
    condition: Condition | None = None
    #: ``foreach:``: where the items of a fan-out step come from, one instance per item:
    #: ``("items", (...))`` a literal list, ``("param", NAME)`` a param holding a JSON or comma
    #: list, ``("from", STEP)`` the value of an upstream step (which is also in ``needs``).
    foreach: tuple[str, Any] | None = None
    #: ``matrix:``: (key, values) pairs; one instance per combination, GitHub Actions' order.
    matrix: tuple[tuple[str, tuple[Any, ...]], ...] | None = None
    #: ``concurrency:``: at most this many instances of this fan-out step run at once.
    concurrency: int | None = None

    @property
    def fans_out(self) -> bool:
        """Whether the step runs once per item (``foreach`` or ``matrix``)."""
        return self.foreach is not None or self.matrix is not None


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    steps: tuple[Step, ...]
    max_parallel: int = 1
    stop_on_fail: bool = False
    default_retry: int = 0
    default_timeout: float | None = None
    backoff: Backoff = field(default_factory=Backoff)
    env: Mapping[str, str] = field(default_factory=_empty)
    params: Mapping[str, str] = field(default_factory=_empty)
    #: Environment variable names every step gets as secrets (masked in all Chronum writes).
    secrets: tuple[str, ...] = ()
    #: The file the flow came from, if any; relative paths resolve against ``base_dir``.
    source: str | None = field(default=None, compare=False)
    base_dir: Path = field(default_factory=Path.cwd, compare=False)
    #: ``cache: true``: every step without its own ``cache:`` is cached.
    cache: bool = False
    #: ``timeout:``: seconds the whole run may take; then it is cancelled and fails.
    timeout: float | None = None

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.steps)
