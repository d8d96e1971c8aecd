"""The built-in YAML (and JSON) parser: text to a positioned tree of YMap/YList/scalars.

PyYAML's composer (libyaml when available) builds nodes that keep line and column; nothing is
ever constructed from a tag, so ``!!python/object/apply:os.system`` is refused, not run. Aliases
share node objects: converted values are memoized per node and the *expanded* size of the
document is counted, so an alias bomb is refused after work proportional to its text, not to
its expansion. YAML keeps the last of two equal keys silently; here it is an error. Mapping
keys are kept as the text written (every key in a flow is a name): ``ON:`` is a string.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from ..errors import Location, Problem, SpecError
from ._checks import describe
from ._nodes import YList, YMap

__all__ = ["MAX_DEPTH", "MAX_VALUES", "explain", "parse"]

#: Deepest nesting accepted; real flows need about six levels.
MAX_DEPTH = 100
#: Most values a document may expand to (aliases counted every time they are used).
MAX_VALUES = 1_000_000

_T = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = _T + "str", _T + "int", _T + "float", _T + "bool", _T + "null"
SEQ, MAP, MERGE, TIMESTAMP = _T + "seq", _T + "map", _T + "merge", _T + "timestamp"

_BaseLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_resolve_tag_cache: dict[str, str] = {}


class _Loader(_BaseLoader):  # type: ignore[misc]
    """Safe composer with cached implicit typing; path resolvers (unused) are skipped."""

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None

    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            if not implicit[0]:
                return STR
            tag = _resolve_tag_cache.get(value)
            if tag is None:
                tag = Resolver.resolve(self, kind, value, implicit)  # type: ignore[no-untyped-call]
                if len(value) <= 64 and len(_resolve_tag_cache) < 4096:
                    _resolve_tag_cache[value] = tag
            return tag
        return SEQ if kind is SequenceNode else MAP


# YAML 1.2 (and JSON) read ``1e3`` as a number; PyYAML's 1.1 rules need ``1.0e+3``.
_Loader.add_implicit_resolver(
    FLOAT, re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)

_constructor = SafeConstructor()
_SCALARS: dict[str, Any] = {
    INT: _constructor.construct_yaml_int,
    FLOAT: _constructor.construct_yaml_float,
    BOOL: _constructor.construct_yaml_bool,
    NULL: _constructor.construct_yaml_null,
    # A date is kept as the text the user wrote: `env: {DAY: 2024-01-01}` means the string.
    TIMESTAMP: lambda node: node.value,
}
_KIND = {INT: "an integer", FLOAT: "a number", BOOL: "a boolean"}


class _Abort(Exception):
    """Stops conversion at once (too deep, too big): continuing would only cost time."""


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_T):] if tag.startswith(_T) else tag


class _Converter:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[Problem] = []
        self.memo: dict[int, tuple[Any, int]] = {}
        self.aliased = False

    def problem(self, node: Node, message: str, hint: str = "") -> None:
        mark = node.start_mark
        loc = Location(self.filename, mark.line + 1, mark.column + 1)
        self.problems.append(Problem(loc, message, hint))

    def abort(self, node: Node, message: str, hint: str = "") -> _Abort:
        self.problem(node, message, hint)
        return _Abort()

    def scalar(self, node: Node) -> Any:
        tag = node.tag
        if tag == STR:
            return node.value
        convert = _SCALARS.get(tag)
        if convert is None:
            if tag == MERGE:
                return node.value
            self.bad_tag(node)
            return None
        try:
            return convert(node)
        except (ValueError, KeyError, TypeError):
            self.problem(node, f"cannot read {node.value!r} as {_KIND.get(tag, 'a value')}")
            return None

    def bad_tag(self, node: Node) -> None:
        self.problem(
            node,
            f"unsupported tag '{_short_tag(node.tag)}'",
            "only plain YAML is accepted: strings, numbers, booleans, null, lists and mappings",
        )

    def collection(self, node: Node, depth: int) -> tuple[Any, int]:
        """Convert a mapping or sequence; returns the value and its expanded size."""
        hit = self.memo.get(id(node))
        if hit is not None:
            self.aliased = True
            return hit
        if depth > MAX_DEPTH:
            raise self.abort(node, f"nested deeper than {MAX_DEPTH} levels")
        result: tuple[Any, int]
        if node.__class__ is MappingNode and node.tag == MAP:
            result = self.mapping(node, depth)
        elif node.__class__ is SequenceNode and node.tag == SEQ:
            result = self.sequence(node, depth)
        else:
            self.bad_tag(node)
            result = (None, 1)
        if result[1] > MAX_VALUES:
            hint = "is this an alias bomb?" if self.aliased else "split the flow"
            raise self.abort(node, f"the document expands to more than {MAX_VALUES:,} values",
                             hint)
        self.memo[id(node)] = result
        return result

    def mapping(self, node: Node, depth: int) -> tuple[YMap, int]:
        start = node.start_mark
        out = YMap(start.line + 1, start.column + 1)
        marks = out.marks
        merges: list[Node] = []
        size = 1
        for knode, vnode in node.value:
            if knode.__class__ is not ScalarNode:
                self.problem(knode, "a mapping key must be a plain value, not a list or mapping")
                continue
            if knode.tag == MERGE:
                merges.append(vnode)
                continue
            if knode.tag != STR and knode.tag not in _SCALARS:
                self.bad_tag(knode)
            # Keys stay as written: `ON: 1` in env is the name ON, not the boolean true.
            key = knode.value
            if vnode.__class__ is ScalarNode:
                value = vnode.value if vnode.tag == STR else self.scalar(vnode)
                size += 1
            else:
                value, n = self.collection(vnode, depth + 1)
                size += n
            km, vm = knode.start_mark, vnode.start_mark
            first = marks.get(key)
            if first is not None:
                self.problem(knode, f"duplicate key {key!r}", f"the first is on line {first[0]}")
                continue
            out[key] = value
            marks[key] = (km.line + 1, km.column + 1, vm.line + 1, vm.column + 1)
        for source in merges:
            size += self.merge(out, source, depth)
        return out, size

    def merge(self, out: YMap, source: Node, depth: int) -> int:
        """``<<: *base`` (or a list of them): keys already present win, as YAML says."""
        items = source.value if source.__class__ is SequenceNode else [source]
        size = 0
        for item in items:
            if item.__class__ is not MappingNode:
                self.problem(item, "'<<' merges mappings only")
                continue
            value, n = self.collection(item, depth + 1)
            size += n
            if isinstance(value, YMap):
                for key, v in value.items():
                    if key not in out:
                        out[key] = v
                        out.marks[key] = value.marks[key]
        return size

    def sequence(self, node: Node, depth: int) -> tuple[YList, int]:
        start = node.start_mark
        out = YList(start.line + 1, start.column + 1)
        marks = out.marks
        size = 1
        for item in node.value:
            if item.__class__ is ScalarNode:
                value = item.value if item.tag == STR else self.scalar(item)
                size += 1
            else:
                value, n = self.collection(item, depth + 1)
                size += n
            m = item.start_mark
            out.append(value)
            marks.append((m.line + 1, m.column + 1))
        return out, size


def _syntax_error(exc: yaml.YAMLError, text: str, filename: str) -> SpecError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            explained = explain(text, mark.line, mark.column, exc.problem or "")
            if explained is not None:
                return SpecError([Problem(Location(filename, *explained[:2]), *explained[2:])])
        message = exc.problem or exc.context or "invalid YAML"
        hint = ""
        if exc.problem and exc.context:
            hint = exc.context
            if exc.context_mark is not None:
                hint += f" on line {exc.context_mark.line + 1}"
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        return SpecError([Problem(Location(filename, line, col), message, hint)])
    position = getattr(exc, "position", 0)
    reason = getattr(exc, "reason", "") or str(exc)
    line, col = _line_col(text, position)
    return SpecError([Problem(Location(filename, line, col), reason)])


# -- PyYAML's syntax errors, said as a person would ----------------------------------------

#: PyYAML (and libyaml) problems that mean "this line is not where the block expects it".
_INDENT_PROBLEMS = ("expected <block end>", "did not find expected '-' indicator",
                    "did not find expected key", "mapping values are not allowed",
                    "could not find expected ':'")
_BLOCK_SCALAR = re.compile(r"(?:^|[:\-]\s)\s*[|>][-+0-9]*\s*(?:#.*)?$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _meaningful(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _open_levels(lines: list[str]) -> dict[int, int]:
    """The indentations a next line may take after ``lines``: each open block's column,
    mapped to the last line (1-based) written at it. Block scalar bodies (``run: |``) are text,
    not structure, and are skipped."""
    levels: dict[int, int] = {}
    scalar_at: int | None = None  # the indentation of the key that opened a block scalar
    for number, line in enumerate(lines, 1):
        if not _meaningful(line):
            continue
        column = _indent(line)
        if scalar_at is not None:
            if column > scalar_at:
                continue
            scalar_at = None
        for level in [lv for lv in levels if lv > column]:
            del levels[level]
        levels[column] = number
        rest = line[column:]
        while rest.startswith("- ") or rest == "-":  # a list item opens its content deeper
            column += 1 + len(rest[1:]) - len(rest[1:].lstrip(" "))
            rest = rest[1:].lstrip(" ")
            if rest:
                levels[column] = number
        if _BLOCK_SCALAR.search(line):
            scalar_at = _indent(line)
    return levels


def explain(text: str, line0: int, col0: int, problem: str) -> tuple[int, int, str, str] | None:
    """(line, column, message, hint) for a syntax error PyYAML reports at 0-based ``line0``,
    ``col0`` with ``problem``, when a plainer account exists: a tab in the indentation, a line
    indented to no open block, a ``: `` inside an unquoted value. None otherwise."""
    lines = text.split("\n")
    if line0 >= len(lines):
        return None
    # The problem's own line first: PyYAML sometimes stops a line after the tab.
    for number in (line0, *range(line0 + 1)):
        line = lines[number]
        lead = line[:len(line) - len(line.lstrip(" \t"))]
        if "\t" in lead:
            return (number + 1, lead.index("\t") + 1,
                    "tabs are not allowed in YAML indentation; use spaces", "")
    if not any(p in problem for p in _INDENT_PROBLEMS):
        return None
    line = lines[line0]
    found = _indent(line)
    levels = _open_levels(lines[:line0])
    if levels and found not in levels:
        # The nearest open block; between two, the deeper one (the line just above).
        expected = min(levels, key=lambda lv: (abs(lv - found), -lv))
        return (line0 + 1, found + 1,
                f"bad indentation: expected {expected} spaces, found {found}",
                f"indent it as line {levels[expected]} is")
    if "mapping values are not allowed" in problem:
        return (line0 + 1, col0 + 1, "a ': ' inside an unquoted value starts a mapping",
                "put the value in quotes")
    return None


def _line_col(text: str, index: int) -> tuple[int, int]:
    index = max(0, min(index, len(text)))
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


def parse(text: str, filename: str) -> Any:
    """Parse YAML (or JSON) text into YMap/YList/scalars, or raise SpecError."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, text, filename) from None
    except UnicodeError as exc:  # lone surrogates cannot be encoded for libyaml
        line, col = _line_col(text, getattr(exc, "start", 0))
        raise SpecError([Problem(Location(filename, line, col),
                                 "the text contains a character that is not valid Unicode")
                         ]) from None
    except RecursionError:  # only the pure-Python composer recurses this deep
        raise SpecError.single(filename, f"nested deeper than {MAX_DEPTH} levels",
                               line=1, col=1) from None
    if root is None:
        return None
    converter = _Converter(filename)
    try:
        if root.__class__ is ScalarNode:
            # A bare scalar has nowhere to keep its position: say what is wrong here.
            value = converter.scalar(root)
            if not converter.problems:
                converter.problem(root, f"expected a mapping at the top level, got "
                                  f"{describe(value)}")
        else:
            value = converter.collection(root, 0)[0]
    except _Abort:
        pass
    if converter.problems:
        raise SpecError(converter.problems)
    return value
