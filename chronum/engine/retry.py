"""Retry delays: a pure function of the policy and a seed, so a run's schedule can be replayed."""

from __future__ import annotations

import hashlib
import random

from ..model import Backoff

__all__ = ["backoff_delay", "seed_for"]


def seed_for(flow: str, step: str, run_id: str, attempt: int) -> int:
    """A stable seed for (flow, step, run, attempt); independent of PYTHONHASHSEED."""
    key = f"{flow}\x00{step}\x00{run_id}\x00{attempt}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")


def backoff_delay(backoff: Backoff, failed_attempt: int, seed: int) -> float:
    """Seconds to wait before attempt ``failed_attempt + 1``.

    ``d = min(max, base * factor**(n-1))`` for the n-th failed attempt, then jitter:
    ``full`` draws U(0, d), ``equal`` d/2 + U(0, d/2), ``none`` keeps d.
    """
    n = max(1, failed_attempt)
    try:
        d = min(backoff.max, backoff.base * backoff.factor ** (n - 1))
    except OverflowError:
        d = backoff.max
    if backoff.jitter == "none" or d <= 0:
        return float(d)
    draw = random.Random(seed).random()
    if backoff.jitter == "equal":
        return float(d / 2 + draw * d / 2)
    return float(draw * d)
