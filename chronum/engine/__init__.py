"""The async engine: ``await run_flow(flow, run_id=..., bus=...)``, and the reuse plan."""

from ..model import TIMEOUT_EXIT_CODE
from .plan import ReusePlan, plan_resume
from .retry import backoff_delay, seed_for
from .runner import (
    Clock,
    RunOutcome,
    SystemClock,
    run_environment,
    run_flow,
    step_environment,
)

__all__ = [
    "TIMEOUT_EXIT_CODE",
    "Clock",
    "ReusePlan",
    "RunOutcome",
    "SystemClock",
    "backoff_delay",
    "plan_resume",
    "run_environment",
    "run_flow",
    "seed_for",
    "step_environment",
]
