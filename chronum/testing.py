"""The executor contract as a test kit: ``check_executor(factory)`` for any executor.

Use it from any test runner (it is synchronous and raises ``AssertionError``)::

    from chronum.testing import check_executor, shell_step

    def test_my_executor_keeps_the_contract():
        check_executor(MyExecutor, make_step=shell_step("mine", image="x"))

What it needs from the executor (``chronum.executors.base`` states the same):

- ``execute(step, ctx)`` returns a ``Result`` whose ``exit_code`` is the program's exit code;
- output goes to ``ctx.log("stdout" | "stderr", line)`` line by line *while* the step runs;
- the step sees ``ctx.env`` (at least its ``CHRONUM_*`` variables);
- when the ``execute`` task is cancelled (a cancel, or the engine's ``asyncio.timeout``), it stops
  what it started and lets ``CancelledError`` propagate, within ``deadline`` seconds;
- optionally ``async finish_run(outputs)``: called once when a run ends (here after each check).

How a check's program becomes a step is executor-specific: ``make_step(name, program, folder)``
returns the ``Step``; ``shell_step`` (a POSIX ``sh`` command in ``run:``) and
``python_script_step`` (a script file in ``run:``) cover most executors. ``leftovers(run_id)``
may list whatever of a run is still alive (processes, containers); it must be empty after a
cancellation or a timeout.
"""

from __future__ import annotations

import asyncio
import secrets
import shlex
import tempfile
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .executors.base import Executor, Result, StepContext
from .model import Flow, Step

__all__ = [
    "CHECKS",
    "Program",
    "StepMaker",
    "check_executor",
    "python_script_step",
    "shell_step",
]

CHECKS = ("exit-codes", "output", "streaming", "environment", "timeout", "cancellation")
#: The variable the environment check sets; ``CHRONUM_*`` reaches every executor's step.
TOKEN_VAR = "CHRONUM_CHECK_TOKEN"
_READY = "chronum-check-ready"


@dataclass(frozen=True, slots=True)
class Program:
    """What a check asks a step to do, in executor-neutral terms, in this order."""

    stdout: tuple[str, ...] = ()
    stderr: tuple[str, ...] = ()
    #: Print the value of this environment variable on stdout.
    echo_env: str | None = None
    sleep: float = 0.0
    exit_code: int = 0


#: ``make_step(name, program, folder) -> Step``; ``folder`` is the flow's folder.
StepMaker = Callable[[str, Program, Path], Step]


def as_shell(program: Program) -> str:
    """The program as a POSIX ``sh`` command (busybox is enough)."""
    parts = [f"echo {shlex.quote(line)}" for line in program.stdout]
    parts += [f"echo {shlex.quote(line)} >&2" for line in program.stderr]
    if program.echo_env:
        parts.append(f'echo "${program.echo_env}"')
    if program.sleep:
        parts.append(f"sleep {program.sleep:g}")
    parts.append(f"exit {program.exit_code}")
    return "; ".join(parts)


def as_python(program: Program) -> str:
    """The program as a Python script; output is flushed line by line."""
    return textwrap.dedent(f"""\
        import os, sys, time
        for line in {list(program.stdout)!r}:
            print(line, flush=True)
        for line in {list(program.stderr)!r}:
            print(line, file=sys.stderr, flush=True)
        if {program.echo_env!r}:
            print(os.environ.get({program.echo_env!r}, ""), flush=True)
        time.sleep({program.sleep!r})
        sys.exit({program.exit_code!r})
        """)


def shell_step(executor: str = "shell", **options: Any) -> StepMaker:
    """Steps whose ``run:`` is a shell command; ``options`` are executor keys (``image=``)."""

    def make(name: str, program: Program, folder: Path) -> Step:
        return Step(name=name, executor=executor, run=as_shell(program), options=options)

    return make


def python_script_step(executor: str = "python", **options: Any) -> StepMaker:
    """Steps whose ``run:`` is a Python script written into the flow's folder."""

    def make(name: str, program: Program, folder: Path) -> Step:
        (folder / f"{name}.py").write_text(as_python(program), encoding="utf-8")
        return Step(name=name, executor=executor, run=f"{name}.py", options=options)

    return make


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.ready = asyncio.Event()

    def __call__(self, stream: str, line: str) -> None:
        self.lines.append((stream, line))
        if line == _READY:
            self.ready.set()

    def stream(self, name: str) -> list[str]:
        return [line for stream, line in self.lines if stream == name]


class _Checker:
    def __init__(self, factory: Callable[[], Executor], make_step: StepMaker, folder: Path,
                 env: Mapping[str, str], grace: float, deadline: float,
                 leftovers: Callable[[str], Sequence[str]] | None) -> None:
        self.factory, self.make_step, self.folder = factory, make_step, folder
        self.env, self.grace, self.deadline, self.leftovers = env, grace, deadline, leftovers

    def _context(self, step: Step, log: _Log, env: Mapping[str, str]) -> StepContext:
        flow = Flow(name="chronum-check", steps=(step,), base_dir=self.folder)
        return StepContext(run_id=secrets.token_hex(6), flow=flow, attempt=1, env=env,
                           cwd=self.folder, params={}, inputs={}, log=log, grace=self.grace)

    async def _run(self, check: str, program: Program, env: Mapping[str, str] | None = None,
                   stop: str | None = None) -> tuple[Result | None, _Log, StepContext]:
        """Run one step; ``stop`` = "cancel" | "timeout" ends it once it printed ready."""
        log = _Log()
        step = self.make_step(check.replace("-", "_"), program, self.folder)
        ctx = self._context(step, log, self.env if env is None else env)
        executor = self.factory()
        try:
            async with asyncio.timeout(self.deadline):
                if stop is None:
                    return await executor.execute(step, ctx), log, ctx
                await self._stopped(check, executor, step, ctx, log, stop)
                return None, log, ctx
        except TimeoutError:
            raise AssertionError(f"{check}: the step did not end within {self.deadline:g}s "
                                 f"(log: {log.lines})") from None
        finally:
            finish = getattr(executor, "finish_run", None)
            if finish is not None:
                await finish({})

    async def _stopped(self, check: str, executor: Executor, step: Step, ctx: StepContext,
                       log: _Log, stop: str) -> None:
        task = asyncio.ensure_future(self._timed(executor, step, ctx, log, stop))
        ready = asyncio.ensure_future(log.ready.wait())
        await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if task.done():
            raise AssertionError(f"{check}: the step ended before printing {_READY!r} "
                                 f"({task.result() if not task.exception() else task.exception()}"
                                 f", log: {log.lines})")
        if stop == "cancel":
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            else:
                raise AssertionError(f"{check}: execute() swallowed the cancellation")
        else:
            outcome = await task
            assert outcome == "timed out", f"{check}: execute() swallowed the timeout: {outcome}"
        alive = list(self.leftovers(ctx.run_id)) if self.leftovers else []
        assert alive == [], f"{check}: still alive after the step was stopped: {alive}"

    async def _timed(self, executor: Executor, step: Step, ctx: StepContext, log: _Log,
                     stop: str) -> str:
        # Exactly how the engine applies step timeouts: asyncio.timeout around execute().
        try:
            async with asyncio.timeout(None) as cm:
                if stop == "timeout":
                    loop = asyncio.get_running_loop()
                    log_ready = log.ready

                    async def expire() -> None:
                        await log_ready.wait()
                        cm.reschedule(loop.time())

                    waiter = asyncio.ensure_future(expire())
                try:
                    result = await executor.execute(step, ctx)
                finally:
                    if stop == "timeout":
                        waiter.cancel()
        except TimeoutError:
            return "timed out"
        return f"returned {result}"

    async def exit_codes(self) -> None:
        for code in (0, 3):
            result, log, _ = await self._run("exit-codes", Program(exit_code=code))
            assert result is not None
            assert result.exit_code == code, (
                f"exit-codes: a program exiting {code} gave {result} (log: {log.lines})")
            assert result.ok is (code == 0)

    async def output(self) -> None:
        program = Program(stdout=("out 1", "out 2"), stderr=("err 1",))
        result, log, _ = await self._run("output", program)
        assert result is not None and result.ok, f"output: {result} (log: {log.lines})"
        assert log.stream("stdout") == ["out 1", "out 2"], f"output: stdout was {log.lines}"
        assert log.stream("stderr") == ["err 1"], f"output: stderr was {log.lines}"

    async def streaming(self) -> None:
        # The line must arrive while the step still runs: _stopped waits for it, then cancels.
        await self._run("streaming", Program(stdout=(_READY,), sleep=300), stop="cancel")

    async def environment(self) -> None:
        token = secrets.token_hex(8)
        result, log, _ = await self._run("environment", Program(echo_env=TOKEN_VAR),
                                         env={**self.env, TOKEN_VAR: token})
        assert result is not None and result.ok, f"environment: {result} (log: {log.lines})"
        assert token in log.stream("stdout"), (
            f"environment: the step did not see {TOKEN_VAR} (log: {log.lines})")

    async def timeout(self) -> None:
        await self._run("timeout", Program(stdout=(_READY,), sleep=300), stop="timeout")

    async def cancellation(self) -> None:
        await self._run("cancellation", Program(stdout=(_READY,), sleep=300), stop="cancel")


def check_executor(
    factory: Callable[[], Executor],
    *,
    make_step: StepMaker | None = None,
    checks: Sequence[str] = CHECKS,
    env: Mapping[str, str] | None = None,
    folder: Path | None = None,
    leftovers: Callable[[str], Sequence[str]] | None = None,
    grace: float = 1.0,
    deadline: float = 60.0,
) -> list[str]:
    """Run the executor contract against ``factory()``; return the checks that passed.

    A fresh executor is made for every check. ``env`` is the step environment (default: this
    process's). Raises ``AssertionError`` naming the check and what went wrong.
    """
    import os

    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown checks {unknown}; known: {', '.join(CHECKS)}")
    make_step = make_step or shell_step()
    base_env = dict(os.environ) if env is None else dict(env)

    async def run_all(where: Path) -> list[str]:
        checker = _Checker(factory, make_step, where, base_env, grace, deadline, leftovers)
        passed = []
        for name in checks:
            await getattr(checker, name.replace("-", "_"))()
            passed.append(name)
        return passed

    if folder is not None:
        return asyncio.run(run_all(folder))
    with tempfile.TemporaryDirectory(prefix="chronum-check-") as tmp:
        return asyncio.run(run_all(Path(tmp)))
