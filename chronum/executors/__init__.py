"""Executors and their registry.

Built-ins (``shell``, ``python``, ``docker``, ``dask``) and plugins are looked up the same
way: by name in an ``ExecutorRegistry``. Plugins come from the ``chronum.executors`` entry point
group, loaded only when a name is not built in or when every name is listed, so ``import
chronum`` stays fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..errors import ExecutorError
from .base import Executor, LogSink, Result, StepContext

__all__ = [
    "ENTRY_POINT_GROUP",
    "Executor",
    "ExecutorFactory",
    "ExecutorRegistry",
    "LogSink",
    "Result",
    "StepContext",
    "default_registry",
    "register_executor",
]

ENTRY_POINT_GROUP = "chronum.executors"

#: A callable that makes an executor; an executor class is one.
ExecutorFactory = Callable[[], Executor]

#: Built-in executors by name, as ``module:attribute`` (imported on first use).
BUILTINS = {
    "shell": "chronum.executors.shell:ShellExecutor",
    "python": "chronum.executors.python:PythonExecutor",
    "docker": "chronum.executors.docker:DockerExecutor",
    "dask": "chronum.executors.dask_executor:DaskExecutor",
}


def _import(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


class ExecutorRegistry:
    """Names to executor factories. Pass one to the engine to control what is available."""

    def __init__(self, builtins: dict[str, str] | None = None, entry_points: bool = True) -> None:
        self._targets: dict[str, str] = dict(BUILTINS if builtins is None else builtins)
        self._factories: dict[str, ExecutorFactory] = {}
        self._use_entry_points = entry_points
        self._entry_points_loaded = False
        self._registered: set[str] = set()

    def register(self, name: str, factory: ExecutorFactory) -> None:
        """Make ``name`` available; replaces an earlier executor of the same name."""
        self._factories[name] = factory
        self._registered.add(name)

    def is_builtin(self, name: str) -> bool:
        """Whether ``name`` is Chronum's own executor here: built in and not replaced by
        ``register``. The flow cache trusts only these (their code is part of its key)."""
        return (name not in self._registered and name in BUILTINS
                and self._targets.get(name) == BUILTINS[name])

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded or not self._use_entry_points:
            return
        self._entry_points_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name not in self._factories and ep.name not in self._targets:
                self._targets[ep.name] = ep.value

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(set(self._targets) | set(self._factories))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name in self._factories or name in self._targets:
            return True
        self._load_entry_points()
        return name in self._targets

    def factory(self, name: str) -> ExecutorFactory:
        if name in self._factories:
            return self._factories[name]
        if name not in self:
            raise ExecutorError(
                f"unknown executor {name!r}; installed executors: {', '.join(self.names())}"
            )
        try:
            factory: ExecutorFactory = _import(self._targets[name])
        except Exception as exc:  # a broken plugin must not take the whole tool down
            raise ExecutorError(
                f"executor {name!r} ({self._targets[name]}) could not be loaded: {exc}"
            ) from exc
        self._factories[name] = factory
        return factory

    def step_keys(self, name: str) -> frozenset[str]:
        """Extra step keys the executor accepts, without constructing it."""
        keys: frozenset[str] = frozenset(getattr(self.factory(name), "step_keys", ()))
        return keys

    def create(self, name: str) -> Executor:
        return self.factory(name)()


default_registry = ExecutorRegistry()


def register_executor(name: str, factory: ExecutorFactory) -> None:
    """Register an executor for every flow run in this process."""
    default_registry.register(name, factory)
