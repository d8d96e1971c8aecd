"""``if:`` conditions: a small expression language, parsed once and never ``eval``-ed.

A condition is read by its own tokenizer and recursive-descent parser into a tree of plain
tuples (so a parsed flow pickles into the flow cache as it is) and evaluated against a
``Scope`` the engine supplies when the step is ready. The grammar, lowest precedence first::

    expr    := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := value (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") value)?
    value   := STRING | NUMBER | true | false | null | "[" values "]" | "(" expr ")"
             | params.NAME | env.NAME | steps.NAME.status | steps.NAME.outputs.KEY
             | always() | success() | failure() | cancelled()

Comparisons follow GitHub Actions: a numeric string compared with a number (or ordered
against another numeric string) is compared as a number, so an output ``rows=42`` satisfies
``steps.produce.outputs.rows > 40``. A condition that names none of the status functions and
no ``steps.X.status`` means ``success() and (condition)``, as GitHub Actions' ``if:`` does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from ._lru import LRU
from .errors import ConditionError

__all__ = ["FUNCTIONS", "Condition", "Scope", "evaluate", "holds", "parse", "reads"]

#: The status functions, as GitHub Actions defines them.
FUNCTIONS = ("always", "success", "failure", "cancelled")
#: The longest condition accepted; a longer one is a generated mistake, never a plan.
MAX_LENGTH = 4096

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>'(?:[^']|'')*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|\.)
  | (?P<bad>&&|\|\||!|=|.)
""", re.VERBOSE)
_BAD_HINTS = {"&&": "use 'and'", "||": "use 'or'", "!": "use 'not'", "=": "use '=='"}
_COMPARE = frozenset({"==", "!=", "<", "<=", ">", ">="})
_NUMERIC = re.compile(r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*\Z")


class Condition(NamedTuple):
    """A parsed condition: its text, its tree, and what it refers to (for validation)."""

    text: str
    tree: tuple[Any, ...]
    #: Uses a status function or a ``steps.X.status``: it decides for itself whether a
    #: failed or skipped upstream stops it (``if: failure()`` handlers, ``if: always()``).
    status_check: bool
    #: ``(kind, name, column)`` for every ``params.NAME`` and ``steps.NAME`` it names.
    refs: tuple[tuple[str, str, int], ...] = ()


class Scope(Protocol):
    """What a condition reads; the engine answers for one step of one run."""

    def param(self, name: str) -> str: ...
    def env(self, name: str) -> str: ...
    def status(self, step: str) -> str: ...
    def output(self, step: str, key: str) -> str: ...
    def function(self, name: str) -> bool: ...


class _Token(NamedTuple):
    kind: str
    text: str
    col: int  # 1-based


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m is not None  # ``bad`` matches any one character
        kind = m.lastgroup or "bad"
        word = m.group()
        if kind == "bad":
            if word in ("'", '"'):
                raise ConditionError("unterminated string", pos + 1,
                                     f"close it with {word}")
            raise ConditionError(f"unexpected {word!r}", pos + 1, _BAD_HINTS.get(word, ""))
        if kind != "space":
            out.append(_Token(kind, word, pos + 1))
        pos = m.end()
    out.append(_Token("end", "", len(text) + 1))
    return out


def _string(word: str) -> str:
    if word[0] == "'":
        return word[1:-1].replace("''", "'")
    return re.sub(r"\\(.)", r"\1", word[1:-1])


def _number(word: str) -> float | int:
    try:
        return int(word)
    except ValueError:
        return float(word)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0
        self.status_check = False
        self.refs: list[tuple[str, str, int]] = []

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def word(self, text: str) -> bool:
        tok = self.tok
        if tok.kind in ("name", "op") and tok.text == text:
            self.i += 1
            return True
        return False

    def expect(self, text: str, after: str) -> None:
        if not self.word(text):
            raise ConditionError(f"expected {text!r} {after}, got {_show(self.tok)}",
                                 self.tok.col)

    def parse(self) -> tuple[Any, ...]:
        if self.tok.kind == "end":
            raise ConditionError("the condition is empty", 1, "write one, e.g. always()")
        tree = self.expr()
        if self.tok.kind != "end":
            raise ConditionError(f"unexpected {_show(self.tok)}", self.tok.col,
                                 "join conditions with 'and' or 'or'")
        return tree

    def expr(self) -> tuple[Any, ...]:
        left = self.conj()
        while self.word("or"):
            left = ("or", left, self.conj())
        return left

    def conj(self) -> tuple[Any, ...]:
        left = self.neg()
        while self.word("and"):
            left = ("and", left, self.neg())
        return left

    def neg(self) -> tuple[Any, ...]:
        if self.word("not"):
            return ("not", self.neg())
        return self.compare()

    def compare(self) -> tuple[Any, ...]:
        left = self.value()
        tok = self.tok
        if tok.kind == "op" and tok.text in _COMPARE:
            self.i += 1
            return ("cmp", tok.text, left, self.value(after=tok.text))
        if self.word("in"):
            return ("in", left, self.value(after="in"))
        if tok.kind == "name" and tok.text == "not" and self.tokens[self.i + 1].text == "in":
            self.i += 2
            return ("not", ("in", left, self.value(after="not in")))
        return left

    def value(self, after: str = "") -> tuple[Any, ...]:
        tok = self.take()
        if tok.kind == "string":
            return ("lit", _string(tok.text))
        if tok.kind == "number":
            return ("lit", _number(tok.text))
        if tok.kind == "op" and tok.text == "(":
            inner = self.expr()
            self.expect(")", "to close the '(' at column " + str(tok.col))
            return inner
        if tok.kind == "op" and tok.text == "[":
            items: list[tuple[Any, ...]] = []
            if not self.word("]"):
                items.append(self.value(after="["))
                while self.word(","):
                    items.append(self.value(after=","))
                self.expect("]", "to close the list")
            return ("list", tuple(items))
        if tok.kind == "name":
            return self.named(tok)
        where = f" after {after!r}" if after else ""
        if tok.kind == "end":
            raise ConditionError(f"expected a value{where}, got the end of the condition",
                                 tok.col)
        raise ConditionError(f"expected a value{where}, got {_show(tok)}", tok.col)

    def named(self, tok: _Token) -> tuple[Any, ...]:
        word = tok.text
        if word in ("true", "false"):
            return ("lit", word == "true")
        if word == "null":
            return ("lit", None)
        if word in FUNCTIONS:
            self.expect("(", f"after {word}")
            self.expect(")", f"after '{word}(': the status functions take no arguments")
            self.status_check = True
            return ("fn", word)
        if word in ("params", "env"):
            name = self.member(word)
            if word == "params":
                self.refs.append(("params", name.text, name.col))
            return (word, name.text)
        if word == "steps":
            name = self.member("steps")
            self.refs.append(("steps", name.text, name.col))
            field = self.member(f"steps.{name.text}")
            if field.text == "status":
                self.status_check = True
                return ("status", name.text)
            if field.text == "outputs":
                key = self.member(f"steps.{name.text}.outputs")
                return ("output", name.text, key.text)
            raise ConditionError(f"unknown field {field.text!r} of a step", field.col,
                                 "use steps.NAME.status or steps.NAME.outputs.KEY")
        if self.tok.text == "(":
            raise ConditionError(f"unknown function {word!r}", tok.col,
                                 "the functions are always(), success(), failure() and "
                                 "cancelled()")
        raise ConditionError(f"unknown name {word!r}", tok.col,
                             "use params.NAME, env.NAME, steps.NAME.status, "
                             "steps.NAME.outputs.KEY, or quote a string: 'text'")

    def member(self, owner: str) -> _Token:
        if not self.word("."):
            raise ConditionError(f"expected '.' after {owner!r}, got {_show(self.tok)}",
                                 self.tok.col)
        tok = self.take()
        if tok.kind == "number" and tok.text.isdigit():
            tok = _Token("name", tok.text, tok.col)  # a step named ``1st`` is fine
        if tok.kind != "name":
            raise ConditionError(f"expected a name after '{owner}.', got {_show(tok)}",
                                 tok.col)
        return tok


def _show(tok: _Token) -> str:
    return "the end of the condition" if tok.kind == "end" else repr(tok.text)


def parse(text: str) -> Condition:
    """Parse ``text``; raises ``ConditionError`` with the column of the first problem."""
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"the condition is {len(text)} characters long, over the limit "
                             f"of {MAX_LENGTH}", 1)
    parser = _Parser(text)
    tree = parser.parse()
    return Condition(text.strip(), tree, parser.status_check, tuple(parser.refs))


# -- evaluation ---------------------------------------------------------------------------


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _NUMERIC.match(value):
        return float(value)
    return None


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    x, y = _as_number(a), _as_number(b)
    if x is not None and y is not None:
        return x == y
    return bool(a == b)


def _order(op: str, a: Any, b: Any) -> bool:
    x, y = _as_number(a), _as_number(b)
    if x is not None and y is not None:
        left: Any
        right: Any
        left, right = x, y
    elif isinstance(a, str) and isinstance(b, str):
        left, right = a, b
    else:
        return False
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


Compiled = Callable[[Scope], Any]


def _contains(item: Any, within: Any) -> bool:
    if isinstance(within, list):
        return any(_equal(item, x) for x in within)
    if isinstance(within, str):
        return (item if isinstance(item, str) else _text(item)) in within
    return False


def _compile(node: tuple[Any, ...]) -> Compiled:
    """The tree as nested closures: evaluated once per step, so the tags are read only once
    per condition rather than at every evaluation."""
    tag = node[0]
    if tag == "lit":
        value = node[1]
        return lambda scope: value
    if tag in ("and", "or", "cmp", "in"):
        a, b = (_compile(node[1]), _compile(node[2])) if tag != "cmp" else (
            _compile(node[2]), _compile(node[3]))
        if tag == "and":
            return lambda scope: bool(a(scope)) and bool(b(scope))
        if tag == "or":
            return lambda scope: bool(a(scope)) or bool(b(scope))
        if tag == "in":
            return lambda scope: _contains(a(scope), b(scope))
        op = node[1]
        if op == "==":
            return lambda scope: _equal(a(scope), b(scope))
        if op == "!=":
            return lambda scope: not _equal(a(scope), b(scope))
        return lambda scope: _order(op, a(scope), b(scope))
    if tag == "not":
        inner = _compile(node[1])
        return lambda scope: not inner(scope)
    if tag == "list":
        items = [_compile(item) for item in node[1]]
        return lambda scope: [item(scope) for item in items]
    name = node[1]
    if tag == "fn":
        return lambda scope: scope.function(name)
    if tag == "status":
        return lambda scope: scope.status(name)
    if tag == "output":
        key = node[2]
        return lambda scope: scope.output(name, key)
    if tag == "params":
        return lambda scope: scope.param(name)
    if tag == "env":
        return lambda scope: scope.env(name)
    raise AssertionError(f"unknown node {tag!r}")


#: Compiled conditions by their text (which decides the tree), shared by every run.
_COMPILED: LRU[str, Compiled] = LRU(4096)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def reads(condition: Condition) -> frozenset[str]:
    """What the condition reads: a subset of ``params``, ``env``, ``steps`` (status and
    outputs) and ``functions``; one that reads only params means the same for a whole run."""
    found: set[str] = set()
    stack = [condition.tree]
    while stack:
        node = stack.pop()
        tag = node[0]
        if tag in ("params", "env"):
            found.add(tag)
        elif tag in ("status", "output"):
            found.add("steps")
        elif tag == "fn":
            found.add("functions")
        elif tag == "list":
            stack.extend(node[1])
        elif tag in ("and", "or", "in"):
            stack.extend(node[1:3])
        elif tag == "cmp":
            stack.extend(node[2:4])
        elif tag == "not":
            stack.append(node[1])
    return frozenset(found)


def evaluate(condition: Condition, scope: Scope) -> bool:
    """Whether the step runs: ``success() and (condition)`` unless it checks status itself."""
    if not condition.status_check and not scope.function("success"):
        return False
    return holds(condition, scope)


def holds(condition: Condition, scope: Scope) -> bool:
    """The condition as written, without the ``success()`` that ``evaluate`` adds."""
    compiled = _COMPILED.get(condition.text)
    if compiled is None:
        compiled = _COMPILED[condition.text] = _compile(condition.tree)
    return bool(compiled(scope))
