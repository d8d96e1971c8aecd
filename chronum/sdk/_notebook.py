"""``await flow.arun()`` in a Jupyter kernel: the live view of ``%%chronum``.

The notebook package already runs a model flow with its view on the kernel's loop; the SDK
builds the flow (registering its functions, so the run finds them) and hands it over.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..api import Run
    from ._flow import Flow

__all__ = ["arun_with_view", "live_view_fits"]


async def arun_with_view(flow: Flow, options: Mapping[str, Any]) -> Run:
    from ..api import Run
    from ..notebook.cell import run_with_view

    started = time.monotonic()
    model = flow.build()
    opts = argparse.Namespace(max_parallel=options.get("max_parallel"),
                              stop_on_fail=options.get("stop_on_fail"), db=options.get("db"),
                              background=False, raise_=False)
    run = await run_with_view(model, opts, started)
    assert isinstance(run, Run)  # not a background handle: background=False
    run.definition = flow
    return run


def live_view_fits(options: Mapping[str, Any]) -> bool:
    """In a Jupyter kernel, and only with options the notebook view knows."""
    if "ipykernel" not in sys.modules or "IPython" not in sys.modules:
        return False
    if set(options) - {"max_parallel", "stop_on_fail", "db"}:
        return False
    from IPython import get_ipython

    return getattr(get_ipython(), "kernel", None) is not None
