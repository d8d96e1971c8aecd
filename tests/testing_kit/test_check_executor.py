"""The contract kit passes real executors and catches broken ones, naming the broken check."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from chronum.executors.base import Result, StepContext
from chronum.executors.python import PythonExecutor
from chronum.executors.shell import ShellExecutor
from chronum.model import Step
from chronum.testing import CHECKS, check_executor, python_script_step


def _no_process_of(folder: Path):
    """leftovers(): processes still running a check's script from ``folder``."""

    def leftovers(run_id: str) -> list[str]:
        alive = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "chronum-check-ready" in cmdline or str(folder) in cmdline:
                alive.append(f"{entry.name}: {cmdline}")
        return alive

    return leftovers


def test_the_shell_executor_keeps_the_contract(tmp_path: Path):
    passed = check_executor(ShellExecutor, folder=tmp_path, leftovers=_no_process_of(tmp_path))
    assert passed == list(CHECKS)


def test_the_python_executor_keeps_the_contract_with_scripts(tmp_path: Path):
    passed = check_executor(PythonExecutor, make_step=python_script_step(), folder=tmp_path,
                            leftovers=_no_process_of(tmp_path))
    assert passed == list(CHECKS)


class _SwallowsCancel(ShellExecutor):
    async def execute(self, step: Step, ctx: StepContext) -> Result:
        try:
            return await super().execute(step, ctx)
        except asyncio.CancelledError:
            return Result(1)


class _AlwaysZero(ShellExecutor):
    async def execute(self, step: Step, ctx: StepContext) -> Result:
        await super().execute(step, ctx)
        return Result(0)


class _Buffered:
    """Delivers output only at the end: not streaming."""

    step_keys = frozenset()

    async def execute(self, step: Step, ctx: StepContext) -> Result:
        lines: list[tuple[str, str]] = []
        inner = StepContext(**{**{f: getattr(ctx, f) for f in ctx.__slots__},
                               "log": lambda s, line: lines.append((s, line))})
        try:
            return await ShellExecutor().execute(step, inner)
        finally:
            for stream, line in lines:
                ctx.log(stream, line)


class _NoEnv(ShellExecutor):
    async def execute(self, step: Step, ctx: StepContext) -> Result:
        env = {k: v for k, v in ctx.env.items() if not k.startswith("CHRONUM_")}
        inner = StepContext(**{**{f: getattr(ctx, f) for f in ctx.__slots__}, "env": env})
        return await super().execute(step, inner)


@pytest.mark.parametrize(("factory", "check", "message"), [
    (_SwallowsCancel, "cancellation", "swallowed the cancellation"),
    (_SwallowsCancel, "timeout", "swallowed the timeout"),
    (_AlwaysZero, "exit-codes", "a program exiting 3 gave"),
    (_Buffered, "streaming", "did not end within"),
    (_NoEnv, "environment", "did not see CHRONUM_CHECK_TOKEN"),
], ids=["cancel", "timeout", "exit-code", "streaming", "environment"])
def test_a_broken_executor_fails_the_check_it_breaks(factory, check, message, tmp_path: Path):
    with pytest.raises(AssertionError, match=re.escape(f"{check}: ") + ".*" + re.escape(message)):
        check_executor(factory, checks=[check], folder=tmp_path, deadline=3)


def test_a_process_left_behind_is_reported(tmp_path: Path):
    def leftovers(run_id: str) -> list[str]:
        return ["container chronum-x"]

    with pytest.raises(AssertionError, match="cancellation: still alive after the step was "
                                             r"stopped: \['container chronum-x'\]"):
        check_executor(ShellExecutor, checks=["cancellation"], folder=tmp_path,
                       leftovers=leftovers)


def test_unknown_checks_are_refused():
    with pytest.raises(ValueError, match="unknown checks"):
        check_executor(ShellExecutor, checks=["speed"])

