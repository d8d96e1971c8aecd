"""``flow.to_yaml()``: the YAML file that loads as the same flow.

A python step is written as ``call: module:function`` when its function can be imported by
name, or as ``call: function`` when it is a top-level function of the running notebook (such
a YAML loads in that kernel: ``%%chronum`` and the notebook's runs look names up there). A
function defined inside another function exists only in this process: refused.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ..errors import SpecError, UsageError

if TYPE_CHECKING:
    from ._flow import Flow

__all__ = ["to_yaml"]


def _importable(target: str, func: Any) -> bool:
    """``target`` names ``func`` in a module other processes can import."""
    module_name, _, qualname = target.partition(":")
    if module_name == "__main__":
        return False  # a notebook or an interactive session
    # `python pipeline.py`: __main__ is pipeline.py, imported elsewhere as `pipeline`
    key = "__main__" if getattr(func, "__module__", None) == "__main__" else module_name
    obj: Any = sys.modules.get(key)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj is func


def _notebook_name(func: Any) -> str | None:
    """The name ``func`` has in the running notebook's namespace, if it is defined there at
    the top level (what ``call: name`` finds in that kernel)."""
    if "IPython" not in sys.modules or getattr(func, "__module__", None) != "__main__":
        return None
    from IPython import get_ipython

    namespace = getattr(get_ipython(), "user_ns", None) or {}
    name = getattr(func, "__name__", None)
    return name if name and namespace.get(name) is func else None


def to_yaml(flow: Flow) -> str:
    """The flow as YAML text; raises ``UsageError`` naming steps that cannot be imported."""
    import yaml

    problems, doc, functions = flow.document()
    if problems:
        raise SpecError(problems)
    flow.build()  # the same checks as for a run, reported at the decorators
    stuck = []
    for step in doc["steps"]:
        func = functions.get(step["name"])
        if func is None or _importable(step["call"], func):
            continue
        name = _notebook_name(func)
        if name is not None:
            step["call"] = name
        else:
            stuck.append(f"{step['name']} ({step['call']})")
    if stuck:
        raise UsageError(
            f"flow {flow.name!r} cannot be written as YAML: these steps call functions that "
            f"cannot be imported by name: {', '.join(stuck)} (define them at the top level "
            f"of a module or of the notebook)")
    text: str = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    return text
