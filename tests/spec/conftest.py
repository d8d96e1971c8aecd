"""Fixtures for the spec tests: an executor registry that does not depend on what is installed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chronum.errors import SpecError
from chronum.executors import ExecutorRegistry
from chronum.model import Flow
from chronum.spec import loads

from .fakes import FakeDocker, FakePython, FakeShell


@pytest.fixture
def executors() -> ExecutorRegistry:
    registry = ExecutorRegistry(builtins={}, entry_points=False)
    registry.register("shell", FakeShell)
    registry.register("python", FakePython)
    registry.register("docker", FakeDocker)
    return registry


@pytest.fixture
def parse(executors: ExecutorRegistry) -> Callable[..., Flow]:
    """``parse(text, **kw)``: loads with the fake executors and filename flow.yaml."""

    def _parse(text: str, **kw: Any) -> Flow:
        kw.setdefault("filename", "flow.yaml")
        kw.setdefault("executors", executors)
        return loads(text, **kw)

    return _parse


@pytest.fixture
def problems(parse: Callable[..., Flow]) -> Callable[..., list[str]]:
    """``problems(text)``: every problem the loader reports, as printed lines."""

    def _problems(text: str, **kw: Any) -> list[str]:
        with pytest.raises(SpecError) as info:
            parse(text, **kw)
        return [str(p) for p in info.value.problems]

    return _problems
