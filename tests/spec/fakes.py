"""Stand-ins for executor classes: validation only reads their ``step_keys``."""

from __future__ import annotations

from typing import Any, ClassVar


class _Fake:
    """Stands in for an executor class: validation only reads ``step_keys``."""

    step_keys: ClassVar[frozenset[str]] = frozenset()

    async def execute(self, step: Any, ctx: Any) -> Any:  # pragma: no cover - never run
        raise NotImplementedError


class FakeShell(_Fake):
    pass


class FakePython(_Fake):
    pass


class FakeDocker(_Fake):
    step_keys = frozenset({"image", "pull", "dockerArgs"})
