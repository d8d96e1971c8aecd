"""``if:`` on a step: parsed when the flow loads, its mistakes located inside the text.

The language itself (tokenizer, parser, evaluator) is ``chronum.conditions``, below the engine
that evaluates it; here it meets the document: a syntax error names the column inside the
condition, an unknown step or parameter gets "did you mean", and a condition may only read
the status and outputs of steps upstream of its own (anything else could still be running
when it is evaluated).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..conditions import Condition, parse
from ..errors import ConditionError
from ..model import STEP_STATES, Step
from ._checks import describe
from ._nodes import Pos

if TYPE_CHECKING:
    from ._build import _Builder

__all__ = ["check_references", "condition"]


def condition(b: _Builder, m: Mapping[Any, Any], path: str, pos: Pos) -> Condition | None:
    """``if:`` of one step, parsed; ``params.NAME`` checked against the declared params."""
    raw = m["if"]
    if isinstance(raw, bool):
        raw = "true" if raw else "false"  # ``if: false`` turns a step off
    if not isinstance(raw, str):
        b.at(m, "if", path, pos, f"expected a condition (text), got {describe(raw)}",
             "e.g. if: params.mode == 'full'")
        return None
    # Steps with the same condition share one parsed object: a generated flow of thousands
    # of steps says the same thing many times, and the flow cache then stores it once.
    known: dict[str, Condition] = b.__dict__.setdefault("_conditions", {})
    try:
        parsed = known.get(raw) or known.setdefault(raw, parse(raw))
    except ConditionError as exc:
        b.at(m, "if", path, pos, f"column {exc.column} of the condition: {exc.message}",
             exc.hint)
        return None
    for kind, name, col in parsed.refs:
        if kind == "params" and name not in b.declared:
            hint = b.suggest(name, b.declared) or (
                f"declared parameters: {', '.join(b.declared)}" if b.declared
                else "the flow declares no parameters")
            b.at(m, "if", path, pos, f"column {col} of the condition: unknown parameter "
                 f"{name!r}", hint)
    _check_states(b, m, path, pos, parsed.tree)
    return parsed


def _check_states(b: _Builder, m: Mapping[Any, Any], path: str, pos: Pos,
                  node: tuple[Any, ...]) -> None:
    """``steps.a.status == 'success'`` can never hold: say which words a status is."""
    tag = node[0]
    if tag in ("and", "or"):
        _check_states(b, m, path, pos, node[1])
        _check_states(b, m, path, pos, node[2])
    elif tag == "not":
        _check_states(b, m, path, pos, node[1])
    elif tag in ("cmp", "in"):
        sides = node[2:] if tag == "cmp" else node[1:]
        if any(side[0] == "status" for side in sides):
            words = [side[1] for side in sides if side[0] == "lit"]
            for side in sides:
                if side[0] == "list":
                    words.extend(item[1] for item in side[1] if item[0] == "lit")
            for word in words:
                if word not in STEP_STATES:
                    hint = b.suggest(str(word), STEP_STATES) or (
                        "a status is one of " + ", ".join(STEP_STATES))
                    b.at(m, "if", path, pos, f"a step's status is never {word!r}", hint)


def check_references(b: _Builder, steps: list[Step], first: Mapping[str, Step],
                     mappings: Mapping[int, Mapping[Any, Any]]) -> None:
    """Every ``steps.NAME`` exists and is upstream of the step whose condition names it."""
    for step in steps:
        cond = step.condition
        if cond is None or not cond.refs:
            continue
        loc = step.location
        spos = (loc.line, loc.col) if loc else (0, 0)
        spath = loc.path if loc else ""
        m = mappings[id(step)]
        for kind, name, col in cond.refs:
            if kind != "steps":
                continue
            where = f"column {col} of the condition"
            if name == step.name:
                b.at(m, "if", spath, spos, f"{where}: a step's condition cannot read the "
                     "step itself", "it has not run yet when the condition is evaluated")
            elif name not in first:
                b.at(m, "if", spath, spos, f"{where}: unknown step {name!r}",
                     b.suggest(name, first))
            elif not _upstream(name, step, first):
                b.at(m, "if", spath, spos, f"{where}: step {name!r} is not upstream of "
                     f"{step.name!r}", f"add '{name}' to its needs")


def _upstream(name: str, step: Step, first: Mapping[str, Step]) -> bool:
    if name in step.needs:
        return True
    seen: set[str] = set()
    stack = list(step.needs)
    while stack:
        current = stack.pop()
        if current == name:
            return True
        if current in seen or current not in first:
            continue
        seen.add(current)
        stack.extend(first[current].needs)
    return False
