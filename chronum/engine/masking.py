"""Secrets: values read from the environment when a run starts, masked in everything it writes.

A flow or step lists ``secrets: [NAME, ...]``. The engine reads each value from the environment
it runs in, gives it to the steps that ask for it, and replaces it with ``***`` in every line of
log and every reason it emits, so the store, the log files, ``--events-jsonl``, the terminal and
the notebook only ever see the masked text (they all hang off the same bus).

Values shorter than ``MIN_LENGTH`` characters are not masked: masking ``"1"`` or ``"yes"``
would blank out unrelated output everywhere and still reveal the value by its gaps. A multi-line
value is masked line by line, because logs arrive one line at a time.

A line longer than an executor keeps whole arrives in pieces; ``Masker.split`` tells the log
sink how much of a piece it can mask and write now, holding back the end that may be the start
of a secret continued in the next piece, so a secret straddling a cut is masked whole.

A step may also print a secret encoded: ``base64`` (alone or inside a longer encoded text, at
any of the three byte alignments, standard or URL-safe alphabet), URL-quoted or escaped as in a
JSON string. Those forms are masked too (``encoded_forms``), as GitHub Actions does; an encoded
form shorter than ``MIN_ENCODED`` characters is not, for the reason short values are not.

Every secret named anywhere in the flow is removed from the environment of the steps that do
not ask for it (``secret_names``): the flow's own secrets go to every step, a step's only to it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import quote, quote_plus

from ..model import Flow, Step

__all__ = ["MASK", "MIN_ENCODED", "MIN_LENGTH", "Masker", "encoded_forms", "missing_secrets",
           "read_secrets", "secret_names"]

MASK = "***"
#: Shorter values are given to the step but not masked (see the module docstring).
MIN_LENGTH = 4
#: Encoded forms shorter than this are not masked: a few base64 characters occur by chance.
MIN_ENCODED = 8


def _base64_cores(raw: bytes) -> Iterator[str]:
    """The part of ``raw``'s base64 text that is the same wherever ``raw`` sits in a longer
    encoded text: for each of the three byte alignments, the characters made only of
    ``raw``'s bits (the first group, mixed with the bytes before, and the last, mixed with
    the bytes after or padded, differ from text to text)."""
    for shift in range(3):
        text = base64.b64encode(bytes(shift) + raw).decode("ascii")
        start = 4 if shift else 0
        end = (shift + len(raw)) // 3 * 4
        yield text[start:end]


def encoded_forms(value: str) -> set[str]:
    """How a step may print ``value`` other than as it is (see the module docstring)."""
    forms: set[str] = set()
    for core in _base64_cores(value.encode("utf-8")):
        forms.add(core)
        forms.add(core.replace("+", "-").replace("/", "_"))
    forms.add(quote(value, safe=""))
    forms.add(quote_plus(value, safe=""))
    forms.add(json.dumps(value)[1:-1])
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    forms.discard(value)
    return {form for form in forms if len(form) >= MIN_ENCODED}


class Masker:
    """``masker(text)`` is ``text`` with every secret value replaced by ``***``."""

    __slots__ = ("_hold", "_pattern")

    def __init__(self, values: Iterable[str]) -> None:
        fragments: set[str] = set()
        for value in values:
            for part in (value, *value.splitlines()):
                part = part.strip("\r\n")
                if len(part) >= MIN_LENGTH:
                    fragments.add(part)
            if len(value) >= MIN_LENGTH:
                fragments.update(encoded_forms(value))
        # longest first, so a secret that contains another is masked whole
        ordered = sorted(fragments, key=lambda f: (-len(f), f))
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        #: How much of a piece's end may be the start of a secret that goes on in the next.
        self._hold = len(ordered[0]) - 1 if ordered else 0

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def split(self, text: str) -> tuple[str, str]:
        """``(done, rest)``: ``done`` can be masked on its own, ``rest`` must wait for more text.

        ``rest`` is at most the longest secret less one character, unless a secret straddles
        that point: then ``done`` takes the whole secret, so masking sees it whole.
        """
        if self._pattern is None:
            return text, ""
        cut = len(text) - self._hold
        if cut <= 0:
            return "", text
        for match in self._pattern.finditer(text):
            if match.start() >= cut:
                break
            if match.end() > cut:
                cut = match.end()
                break
        return text[:cut], text[cut:]


def secret_names(flow: Flow) -> dict[str, None]:
    """Every secret the flow or one of its steps names, in order."""
    names = dict.fromkeys(flow.secrets)
    for step in flow.steps:
        names.update(dict.fromkeys(step.secrets))
    return names


def read_secrets(flow: Flow, env: Mapping[str, str]) -> dict[str, str]:
    """The values of every secret the flow or its steps name that ``env`` has."""
    return {name: env[name] for name in secret_names(flow) if name in env}


def missing_secrets(flow: Flow, step: Step, values: Mapping[str, str]) -> list[str]:
    """Secrets ``step`` gets (the flow's and its own) that have no value."""
    return [n for n in dict.fromkeys((*flow.secrets, *step.secrets)) if n not in values]
