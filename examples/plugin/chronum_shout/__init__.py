"""An example Chronum executor, registered through the ``chronum.executors`` entry point.

``executor: shout`` with ``message: hello`` logs ``HELLO``; ``exitCode:`` sets how it ends.
"""

from __future__ import annotations

import asyncio

from chronum.executors import Result, StepContext
from chronum.model import Step


class ShoutExecutor:
    #: The step keys this executor adds; anything else is a spec error, with a hint.
    step_keys = frozenset({"message", "exitCode"})

    async def execute(self, step: Step, ctx: StepContext) -> Result:
        await asyncio.sleep(0)  # a real executor awaits its work here; cancellation lands there
        ctx.log("stdout", str(step.options.get("message", "")).upper())
        code = int(step.options.get("exitCode", 0))
        return Result(code, error=None if code == 0 else f"told to exit {code}")
