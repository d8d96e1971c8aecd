"""Checks of ``call:`` steps before a run: the function exists, and its parameters are wired.

Without them a misspelt function (``call: laod``) or a parameter no step feeds fails only when
the run reaches that step, minutes in, with the reason in a collapsed log. Here each becomes a
``file:line:col`` problem at load, with "did you mean". Finding a ``module:function`` imports
its module (the run would import it anyway); a bare name is looked up in the namespace given
(a notebook's), so a flow loaded without one checks only its module calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import Location, Problem
from ..executors.python import CONTEXT_NAMES, call_plan, find_function, refresh_modules
from ..model import Flow, Step
from ._build import PYTHON_LIKE
from ._checks import did_you_mean

__all__ = ["check_calls"]


def _where(step: Step, text: str | None, key: str) -> Location:
    """The line of ``key:`` inside the step (found in the text), else the step's own line."""
    loc = step.location or Location("<flow>")
    if text is not None and loc.line:
        lines = text.split("\n")
        for number in range(loc.line - 1, len(lines)):
            line = lines[number]
            stripped = line.lstrip(" -")
            if number > loc.line - 1 and line.lstrip(" ").startswith("- "):
                break  # the next step
            if stripped.startswith(f"{key}:"):
                return Location(loc.file, number + 1, len(line) - len(stripped) + 1,
                                f"{loc.path}.{key}" if loc.path else key)
    return Location(loc.file, loc.line, loc.col, f"{loc.path}.{key}" if loc.path else key)


def check_calls(flow: Flow, namespace: Mapping[str, Any] | None = None, *,
                text: str | None = None) -> list[Problem]:
    """Every problem with the flow's ``call:`` steps, in file order (an empty list if none).

    ``text`` is the flow's source text, used only to point at the ``call:`` line."""
    problems: list[Problem] = []
    names = set(flow.step_names)
    refresh_modules((s.call for s in flow.steps if s.call), flow.base_dir)  # as the run will
    for step in flow.steps:
        if step.call is None or step.executor not in PYTHON_LIKE:
            continue
        where = _where(step, text, "call")
        try:
            func = find_function(step.call, flow.base_dir, namespace)
        except LookupError as exc:
            message, word, choices = exc.args
            problems.append(Problem(where, message, did_you_mean(word, choices)))
            continue
        if func is None:  # a notebook function, and no notebook to look in
            continue
        problems.extend(_wiring(step, func, names, where))
    return problems


def _wiring(step: Step, func: Any, names: set[str], where: Location) -> list[Problem]:
    """A required parameter that no upstream feeds: a step outside ``needs``, or no step."""
    plan = call_plan(func)
    problems = []
    # An instance of a fan-out step is given its item, and a matrix's values by key.
    given = {"item", *(key for key, _values in step.matrix or ())} if step.fans_out else set()
    for name, required, _positional in plan.params:
        if name in CONTEXT_NAMES or name in step.needs or name in given or not required:
            continue
        what = f"{step.call}: parameter {name!r}"
        if name in names and name != step.name:
            needs = ", ".join((*step.needs, name))
            problems.append(Problem(where, f"{what} takes the value of step {name!r}, which "
                                    "is not in needs", f"add it: needs: [{needs}]"))
        else:
            hint = did_you_mean(name, step.needs) or "give it a default, or name a step in needs"
            problems.append(Problem(where, f"{what} matches no step in needs and has no "
                                    "default", hint))
    return problems
