"""The ``shell`` executor: ``run:`` through ``/bin/sh -e -c``, or the shell named by ``shell:``.

Scripts stop at the first failing line, as GitHub Actions runs them: ``sh -e``, and
``bash -e -o pipefail`` (also zsh and ksh, which know ``pipefail``). ``set +e`` in the script
opts out. A shell not known to take these options runs the script as it is.
"""

from __future__ import annotations

from typing import ClassVar

from ..model import Step
from .base import Result, StepContext
from .process import describe_exit, run_process

__all__ = ["DEFAULT_SHELL", "ShellExecutor", "shell_options"]

DEFAULT_SHELL = "/bin/sh"

_ERREXIT = {"sh": ("-e",), "dash": ("-e",), "ash": ("-e",),
            "bash": ("-e", "-o", "pipefail"), "zsh": ("-e", "-o", "pipefail"),
            "ksh": ("-e", "-o", "pipefail")}


def shell_options(shell: str) -> tuple[str, ...]:
    """The options that make ``shell`` stop at the first failing command."""
    return _ERREXIT.get(shell.rsplit("/", 1)[-1], ())


class ShellExecutor:
    """Run ``step.run`` as a shell command in its own process group.

    The environment is ``ctx.env`` exactly (the engine has already merged process, flow, step
    and params), so a step sees the same variables whichever executor host runs it. ``shell:``
    is looked up on that environment's ``PATH``, so ``shell: bash`` means the bash the step
    would find itself.
    """

    #: ``shell:`` is a common Step field; this executor has no keys of its own.
    step_keys: ClassVar[frozenset[str]] = frozenset()

    async def execute(self, step: Step, ctx: StepContext) -> Result:
        if not step.run:
            ctx.log("stderr", f"chronum: step {step.name!r} has nothing to run (no 'run:')")
            return Result(1, error="no 'run:' command")
        shell = DEFAULT_SHELL
        if step.shell:
            import shutil  # only for a chosen shell; most steps never need it

            found = shutil.which(step.shell, path=ctx.env.get("PATH"))
            if found is None:
                message = f"shell not found: {step.shell}"
                ctx.log("stderr", f"chronum: {message}")
                return Result(127, error=message)
            shell = found
        code = await run_process(
            [shell, *shell_options(shell), "-c", step.run], env=ctx.env, cwd=ctx.cwd,
            log=ctx.log, grace=ctx.grace,
            detach=step.options.get("detach") == "allow",
            on_spawn=ctx.spawned,
        )
        return Result(code, error=None if code == 0 else describe_exit(code))
