"""What ``call:`` would say for a step function: ``module:qualname``."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["call_target"]

_IDENT_PATH = re.compile(r"[^\W\d]\w*(?:\.[^\W\d]\w*)*\Z")


def _real_file(file: str) -> bool:
    return file.endswith(".py") and "ipykernel_" not in file and os.path.isfile(file)


def call_target(func: Callable[..., Any]) -> str:
    """``module:qualname``, what ``call:`` would say; informative only for functions that
    cannot be imported (the SDK hands the function object itself to the executor)."""
    module = getattr(func, "__module__", None) or "__main__"
    if module == "__main__":
        main = sys.modules.get("__main__")
        file = getattr(main, "__file__", None)
        stem = Path(file).stem if isinstance(file, str) else ""
        if isinstance(file, str) and stem.isidentifier() and _real_file(file):
            module = stem  # `python pipeline.py`: the module other processes would import
    qualname = str(getattr(func, "__qualname__", None) or getattr(func, "__name__", "function"))
    if not _IDENT_PATH.match(qualname):
        name = getattr(func, "__name__", "")
        qualname = name if name.isidentifier() else "function"
    return f"{module}:{qualname}"
