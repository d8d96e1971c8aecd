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

Every secret named anywhere in the flow is removed from the environment of the steps that do
not ask for it (``secret_names``): the flow's own secrets go to every step, a step's only to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ..model import Flow, Step

__all__ = ["MASK", "MIN_LENGTH", "Masker", "missing_secrets", "read_secrets", "secret_names"]

MASK = "***"
#: Shorter values are given to the step but not masked (see the module docstring).
MIN_LENGTH = 4


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
