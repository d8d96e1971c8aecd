"""``foreach:``, ``matrix:`` and ``concurrency:`` of a step: read, checked, located.

A fan-out step runs once per item. Where the items come from is decided here, at load time, as
far as it can be: a literal list and a matrix are complete; ``{param: NAME}`` must name a
declared param; ``{from: STEP}`` must name another step, which becomes one of the step's needs
(the items are that step's value, so it must have finished first; writing it in ``needs`` as
well is allowed and changes nothing). The items themselves of a param or a step are known only
when the run reaches the step (``chronum.engine.fanout``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ._checks import Checker, describe, field_path
from ._nodes import Pos, child_pos

__all__ = ["FANOUT_KEYS", "MAX_INSTANCE_NAME", "MAX_ITEMS", "Fanout", "instance_names",
           "matrix_items", "read"]

FANOUT_KEYS = frozenset({"foreach", "matrix", "concurrency"})
#: The most items a literal list or a matrix may hold; beyond it a flow is a data file.
MAX_ITEMS = 100_000
#: The longest instance name (``step[region=eu,size=s]``): it names the instance's log file.
MAX_INSTANCE_NAME = 200
_SOURCE_KEYS = ("param", "from")
_MATRIX_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: Names a python ``call:`` gets already: a matrix key of that name would hide it.
_RESERVED = frozenset({"item", "ctx", "context"})
#: A matrix value names its instance (``step[region=eu]``) and its log file.
_BAD_VALUE = re.compile(r"[/\\\[\],=\0\n\r]")


class Fanout:
    """What one step's fan-out keys said; ``None`` fields were not given (or were wrong)."""

    __slots__ = ("concurrency", "foreach", "matrix", "param_at", "source")

    def __init__(self) -> None:
        self.foreach: tuple[str, Any] | None = None
        self.matrix: tuple[tuple[str, tuple[Any, ...]], ...] | None = None
        self.concurrency: int | None = None
        #: ``{from: STEP}``: the step, to be added to ``needs``.
        self.source: str | None = None
        #: ``{param: NAME}``: where it was written, so an undeclared name is reported there.
        self.param_at: tuple[Mapping[Any, Any], str, Pos] | None = None


def _plain(value: Any) -> Any:
    """A YAML value as plain JSON-like data (the parser's positioned containers dropped)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def read(checker: Checker, m: Mapping[Any, Any], path: str, pos: Pos, name: str | None
         ) -> Fanout:
    """The step's ``foreach``/``matrix``/``concurrency``, every problem reported."""
    out = Fanout()
    get = m.get
    if get("foreach") is not None and get("matrix") is not None:
        checker.at(m, "matrix", path, pos, "a step takes 'foreach' or 'matrix', not both",
                   "a matrix is already a list of items: move the list into it")
        return out
    if get("foreach") is not None:  # null means "not given", as for every optional key
        _foreach(checker, m, path, pos, out)
    if get("matrix") is not None:
        _matrix(checker, m, path, pos, name, out)
    if get("concurrency") is not None:
        value = checker.integer(m, "concurrency", path, pos, 1, MAX_ITEMS)
        if value is not None and out.foreach is None and out.matrix is None \
                and get("foreach") is None and get("matrix") is None:
            checker.at(m, "concurrency", path, pos, "'concurrency' caps the instances of a "
                       "fan-out step", "add 'foreach' or 'matrix', or remove it")
        else:
            out.concurrency = value
    return out


def _foreach(checker: Checker, m: Mapping[Any, Any], path: str, pos: Pos, out: Fanout) -> None:
    raw = m["foreach"]
    if isinstance(raw, list | tuple):
        if len(raw) > MAX_ITEMS:
            checker.at(m, "foreach", path, pos, f"{len(raw):,} items, over the limit of "
                       f"{MAX_ITEMS:,}", "write them to a file and use {from: STEP}")
            return
        out.foreach = ("items", tuple(_plain(item) for item in raw))
        return
    if not isinstance(raw, Mapping):
        hint = f"for one item write [{raw}]" if isinstance(raw, str | int | float) else ""
        checker.at(m, "foreach", path, pos, f"expected a list, {{param: NAME}} or "
                   f"{{from: STEP}}, got {describe(raw)}", hint)
        return
    fpath, fpos = field_path(path, "foreach"), child_pos(m, "foreach", pos)
    checker.keys(raw, fpath, fpos, _SOURCE_KEYS)
    given = [k for k in _SOURCE_KEYS if k in raw]
    if len(given) != 1:
        if not any(k not in _SOURCE_KEYS for k in raw) or not raw:
            checker.at(m, "foreach", path, pos, "expected exactly one of 'param' or 'from'",
                       "{param: NAME} takes a param's list, {from: STEP} a step's value")
        return
    key = given[0]
    value = checker.text(raw, key, fpath, fpos)
    if value is None:
        return
    if value == "":
        checker.at(raw, key, fpath, fpos, f"the {'param' if key == 'param' else 'step'} "
                   "name is empty")
        return
    out.foreach = (key, value)
    if key == "from":
        out.source = value
    else:
        out.param_at = (raw, fpath, fpos)


def _matrix(checker: Checker, m: Mapping[Any, Any], path: str, pos: Pos, name: str | None,
            out: Fanout) -> None:
    raw = checker.mapping(m, "matrix", path, pos, "a mapping of keys to lists of values")
    if raw is None:
        return
    mpath, mpos = field_path(path, "matrix"), child_pos(m, "matrix", pos)
    if not raw:
        checker.at(m, "matrix", path, pos, "the matrix is empty", "give at least one key "
                   "with a list of values, e.g. {region: [eu, us]}")
        return
    pairs: list[tuple[str, tuple[Any, ...]]] = []
    ok = True
    for key, values in raw.items():
        if not isinstance(key, str) or not _MATRIX_KEY.match(key):
            shown = repr(key) if isinstance(key, str) else describe(key)
            checker.at(raw, key, mpath, mpos, f"invalid matrix key {shown}",
                       "matrix keys become CHRONUM_MATRIX_<KEY> and parameter names: use "
                       "letters, digits and '_', not starting with a digit", of_key=True)
            ok = False
            continue
        if key in _RESERVED:
            checker.at(raw, key, mpath, mpos, f"the matrix key {key!r} is reserved",
                       "'item', 'ctx' and 'context' are parameters every call gets already",
                       of_key=True)
            ok = False
            continue
        kpath = field_path(mpath, key)
        if isinstance(values, str | int | float | bool):
            values = [values]  # one value, as GitHub Actions allows
        if not isinstance(values, list | tuple):
            checker.at(raw, key, mpath, mpos, f"expected a list of values, got "
                       f"{describe(values)}")
            ok = False
            continue
        if not values:
            checker.at(raw, key, mpath, mpos, "a matrix key needs at least one value")
            ok = False
            continue
        kpos = child_pos(raw, key, mpos)
        for i, value in enumerate(values):
            if not isinstance(value, str | int | float | bool):
                checker.at(values, i, kpath, kpos, f"expected a string, number or boolean, "
                           f"got {describe(value)}")
                ok = False
            elif isinstance(value, str) and (value == "" or _BAD_VALUE.search(value)):
                checker.at(values, i, kpath, kpos, f"invalid matrix value {value!r}",
                           "a value names its instance (step[key=value]): leave out "
                           "'/', '\\', '[', ']', ',', '=' and line breaks")
                ok = False
        pairs.append((key, tuple(values)))
    if not ok:
        return
    count = 1
    for _key, values in pairs:
        count *= len(values)
    if count > MAX_ITEMS:
        checker.at(m, "matrix", path, pos, f"{count:,} combinations, over the limit of "
                   f"{MAX_ITEMS:,}")
        return
    if name is not None:
        longest = len(name) + 2 + sum(len(k) + 1 + max(len(_text(v)) for v in values)
                                      for k, values in pairs) + len(pairs) - 1
        if longest > MAX_INSTANCE_NAME:
            checker.at(m, "matrix", path, pos, f"instance names would be up to {longest} "
                       f"characters long, over the limit of {MAX_INSTANCE_NAME}",
                       "use shorter keys or values")
            return
    out.matrix = tuple(pairs)


def check_params(checker: Checker, refs: Sequence[tuple[Fanout, str]],
                 params: Mapping[str, str]) -> None:
    """``foreach: {param: NAME}`` must name a declared param."""
    for fan, param in refs:
        if fan.param_at is None or param in params:
            continue
        raw, fpath, fpos = fan.param_at
        hint = checker.suggest(param, params) or (
            f"declared parameters: {', '.join(params)}" if params
            else "declare it under 'params:'")
        checker.at(raw, "param", fpath, fpos, f"unknown parameter {param!r}", hint)


def report_source(checker: Checker, m: Mapping[Any, Any], path: str, pos: Pos, message: str,
                  hint: str) -> None:
    """A problem with ``foreach: {from: STEP}`` (an unknown step, the step itself), where the
    step name is written."""
    raw = m.get("foreach")
    if isinstance(raw, Mapping) and "from" in raw:
        checker.at(raw, "from", field_path(path, "foreach"), child_pos(m, "foreach", pos),
                   message, hint)
    else:
        checker.add(pos, path, message, hint)


# -- the items ------------------------------------------------------------------------------


def _text(value: Any) -> str:
    """A matrix value as its instance name and ``CHRONUM_MATRIX_<KEY>`` show it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def matrix_items(matrix: Sequence[tuple[str, Sequence[Any]]]) -> list[dict[str, Any]]:
    """Every combination, as GitHub Actions orders them: the first key varies slowest."""
    keys = [k for k, _ in matrix]
    return [dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(values for _, values in matrix))]


def instance_names(step: str, matrix: Sequence[tuple[str, Sequence[Any]]] | None, n: int
                   ) -> list[str]:
    """``step[0]`` ... for a list; ``step[region=eu,size=s]`` ... for a matrix."""
    if matrix is None:
        return [f"{step}[{i}]" for i in range(n)]
    return [f"{step}[{','.join(f'{k}={_text(v)}' for k, v in combo.items())}]"
            for combo in matrix_items(matrix)]
