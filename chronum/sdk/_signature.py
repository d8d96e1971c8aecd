"""The parameters of a step function, worked out once per function.

Building a 1,000-step flow asks the same question for every step, often of the same function;
``inspect.signature`` costs tens of microseconds, so answers are cached by function.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["call_target", "params_of"]

#: (name, required) in signature order, and whether the function takes ``**kwargs``.
Params = tuple[tuple[tuple[str, bool], ...], bool]

_cache: weakref.WeakKeyDictionary[Callable[..., Any], Params] = weakref.WeakKeyDictionary()


def _compute(func: Callable[..., Any]) -> Params:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # some builtins have no signature: they take nothing
        return (), False
    params: list[tuple[str, bool]] = []
    var_keyword = False
    for p in signature.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_keyword = True
        elif p.kind is not p.VAR_POSITIONAL:
            params.append((p.name, p.default is p.empty))
    return tuple(params), var_keyword


def params_of(func: Callable[..., Any]) -> Params:
    """The parameters the python executor binds by name (``*args`` never receives values)."""
    try:
        found = _cache.get(func)
    except TypeError:  # not weak-referenceable
        return _compute(func)
    if found is None:
        found = _cache[func] = _compute(func)
    return found


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
