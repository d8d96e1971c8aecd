"""``await flow.arun()`` in a Jupyter kernel: the live view of ``%%chronum``.

The notebook package already runs a model flow with its view on the kernel's loop; the SDK
builds the flow (registering its functions, so the run finds them) and hands it over.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..api import Run
    from ..session import RunOptions
    from ._flow import Flow

__all__ = ["arun_with_view", "live_view_fits"]


async def arun_with_view(flow: Flow, options: RunOptions) -> Run:
    from ..api import Run
    from ..notebook.cell import run_with_view

    started = time.monotonic()
    run = await run_with_view(flow.build(), options, started)
    assert isinstance(run, Run)  # not a background handle: background is off
    run.definition = flow
    return run


def live_view_fits(options: RunOptions) -> bool:
    """In a Jupyter kernel (a notebook front end that shows widgets)."""
    if "ipykernel" not in sys.modules or "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    return getattr(get_ipython(), "kernel", None) is not None
