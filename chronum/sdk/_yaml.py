"""``flow.to_yaml()``: the YAML file that loads as the same flow.

Only possible when every python step can be imported by name (``call: module:function``): a
function defined in a notebook or inside another function exists only in this process.
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


def to_yaml(flow: Flow) -> str:
    """The flow as YAML text; raises ``UsageError`` naming steps that cannot be imported."""
    import yaml

    problems, doc, functions = flow.document()
    if problems:
        raise SpecError(problems)
    flow.build()  # the same checks as for a run, reported at the decorators
    stuck = [f"{step['name']} ({step['call']})" for step in doc["steps"]
             if step["name"] in functions
             and not _importable(step["call"], functions[step["name"]])]
    if stuck:
        raise UsageError(
            f"flow {flow.name!r} cannot be written as YAML: these steps call functions that "
            f"cannot be imported by name: {', '.join(stuck)} (define them at the top level "
            f"of a module)")
    text: str = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    return text
