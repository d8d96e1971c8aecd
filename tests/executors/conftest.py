"""Fixtures for executor tests: a recording log sink and a StepContext builder."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from executor_helpers import Log, MakeCtx

from chronum.executors.base import StepContext
from chronum.model import Flow, Step


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def make_ctx(tmp_path: Path) -> MakeCtx:
    def make(
        log: Callable[[str, str], None],
        *,
        steps: tuple[Step, ...] = (),
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        inputs: Mapping[str, Any] | None = None,
        extras: Mapping[str, Any] | None = None,
        base_dir: Path | None = None,
    ) -> StepContext:
        flow = Flow(name="t", steps=steps, base_dir=base_dir or tmp_path)
        return StepContext(
            run_id="r1",
            flow=flow,
            attempt=1,
            env=dict(os.environ) if env is None else env,
            cwd=cwd or tmp_path,
            params={},
            inputs=inputs or {},
            log=log,
            grace=0.5,
            extras=extras or {},
        )

    return make
