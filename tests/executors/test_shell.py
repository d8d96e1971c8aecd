"""The shell executor end to end: /bin/sh by default, `shell:` resolved on the step's PATH."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from executor_helpers import Log, MakeCtx, alive

from chronum.executors import Executor, ExecutorRegistry
from chronum.executors.shell import ShellExecutor
from chronum.model import Step


def test_is_an_executor_registered_as_shell() -> None:
    executor = ExecutorRegistry(entry_points=False).create("shell")
    assert isinstance(executor, ShellExecutor)
    assert isinstance(executor, Executor)
    assert ShellExecutor.step_keys == frozenset()


@pytest.mark.parametrize(
    ("run", "code", "error"),
    [("echo hi", 0, None), ("exit 3", 3, "exited with code 3"),
     ("kill -9 $$", 137, "killed by signal SIGKILL")],
    ids=["ok", "exit-3", "killed"],
)
def test_result_carries_exit_code_and_reason(
    run: str, code: int, error: str | None, log: Log, make_ctx: MakeCtx
) -> None:
    result = asyncio.run(ShellExecutor().execute(Step(name="s", run=run), make_ctx(log)))
    assert (result.exit_code, result.error) == (code, error)


def test_env_and_cwd_come_from_the_context(log: Log, make_ctx: MakeCtx, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    ctx = make_ctx(log, env={"PATH": "/usr/bin:/bin", "STAGE": "dev"}, cwd=work)
    step = Step(name="s", run='echo "$STAGE"; pwd -P; echo "${HOME-nohome}"')
    assert asyncio.run(ShellExecutor().execute(step, ctx)).exit_code == 0
    assert log.stdout == ["dev", str(work.resolve()), "nohome"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_shell_bash_runs_bash_syntax(log: Log, make_ctx: MakeCtx) -> None:
    step = Step(name="s", run='a=(x y z); [[ ${#a[@]} == 3 ]] && echo "${a[1]}"', shell="bash")
    assert asyncio.run(ShellExecutor().execute(step, make_ctx(log))).exit_code == 0
    assert log.stdout == ["y"]


def test_unknown_shell_is_127_with_a_message(log: Log, make_ctx: MakeCtx) -> None:
    step = Step(name="s", run="echo hi", shell="no-such-shell-xyz")
    result = asyncio.run(ShellExecutor().execute(step, make_ctx(log)))
    assert result.exit_code == 127
    assert log.stderr == ["chronum: shell not found: no-such-shell-xyz"]
    assert log.stdout == []


def test_step_without_run_fails_cleanly(log: Log, make_ctx: MakeCtx) -> None:
    result = asyncio.run(ShellExecutor().execute(Step(name="s"), make_ctx(log)))
    assert result.exit_code == 1
    assert log.stderr == ["chronum: step 's' has nothing to run (no 'run:')"]


def test_cancelled_step_leaves_no_process(log: Log, make_ctx: MakeCtx, tmp_path: Path
                                               ) -> None:
    # The engine stops a step (timeout, stopOnFail, Ctrl-C) by cancelling execute().
    async def scenario() -> None:
        started = log.when("started")
        step = Step(name="s", run="echo $$ > pid; echo started; sleep 100")
        task = asyncio.create_task(ShellExecutor().execute(step, make_ctx(log)))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert not alive(int((tmp_path / "pid").read_text()))
