"""Chronum: workflows as DAGs of steps, run on asyncio, recorded in SQLite.

    >>> import chronum
    >>> run = chronum.run("flow.yaml")          # or: await chronum.arun(...) in a notebook
    >>> chronum.history()                       # past runs as a pandas DataFrame
    >>> flow = chronum.Flow("etl")              # a flow in Python: @flow.step() functions

Public names are loaded on first use, so ``import chronum`` stays fast and pulls in neither
asyncio nor pandas until they are needed.
"""

from __future__ import annotations

import importlib

from ._version import __version__

# Not typing.TYPE_CHECKING: `import chronum` imports nothing it does not need at run time.
TYPE_CHECKING = False

__all__ = [
    "Backoff",
    "ChronumError",
    "Event",
    "EventBus",
    "Executor",
    "Flow",
    "Result",
    "RetryPolicy",
    "Run",
    "SpecError",
    "Step",
    "StepContext",
    "__version__",
    "aresume",
    "arun",
    "attempts",
    "cancel",
    "compare",
    "events",
    "history",
    "load",
    "register_executor",
    "register_parser",
    "resume",
    "run",
    "runs",
    "show",
    "steps",
]

_LAZY = {
    "Backoff": "chronum.model",
    "Flow": "chronum.sdk",
    "RetryPolicy": "chronum.model",
    "Step": "chronum.model",
    "ChronumError": "chronum.errors",
    "SpecError": "chronum.errors",
    "Event": "chronum.eventbus",
    "EventBus": "chronum.eventbus",
    "Executor": "chronum.executors",
    "Result": "chronum.executors",
    "StepContext": "chronum.executors",
    "register_executor": "chronum.executors",
    "register_parser": "chronum.spec",
    "Run": "chronum.api",
    "arun": "chronum.api",
    "aresume": "chronum.api",
    "attempts": "chronum.api",
    "cancel": "chronum.api",
    "compare": "chronum.api",
    "events": "chronum.api",
    "history": "chronum.api",
    "load": "chronum.api",
    "resume": "chronum.api",
    "run": "chronum.api",
    "runs": "chronum.api",
    "steps": "chronum.api",
    "show": "chronum.api",
}

if TYPE_CHECKING:
    from typing import Any

    from .api import (
        Run,
        aresume,
        arun,
        attempts,
        cancel,
        compare,
        events,
        history,
        load,
        resume,
        run,
        runs,
        show,
        steps,
    )
    from .errors import ChronumError, SpecError
    from .eventbus import Event, EventBus
    from .executors import Executor, Result, StepContext, register_executor
    from .model import Backoff, RetryPolicy, Step
    from .sdk import Flow
    from .spec import register_parser


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext chronum``: registers the ``%%chronum`` and ``%chronum`` magics."""
    from .notebook import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .notebook import unload_ipython_extension as unload

    unload(ipython)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'chronum' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    if name == "run":
        _in_a_kernel()
    return value


def _in_a_kernel() -> None:
    """``chronum.run(...)`` in a Jupyter kernel shows the live view of ``%%chronum`` even
    where ``%load_ext chronum`` never ran: the notebook's state for this shell sets it up."""
    import sys

    if "ipykernel" not in sys.modules or "IPython" not in sys.modules:
        return
    from IPython import get_ipython

    shell = get_ipython()
    if getattr(shell, "kernel", None) is not None:
        from .notebook.kernel import state_of

        state_of(shell)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
