"""Bad input: hypothesis over the spec loader (structured flows, raw bytes) and hostile YAML.

The strategies are those of ``tests/spec/test_fuzz.py``; here they run at any size, and each
document is timed: the loader must answer within ``limit_s`` with a Flow or a ChronumError
whose problems have a location, and never raise anything else.
"""

from __future__ import annotations

import time
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chronum.errors import ChronumError, SpecError
from chronum.model import Flow
from chronum.spec import loads
from tests.spec.test_fuzz import REGISTRY, flow

from ._common import Figure

__all__ = ["HOSTILE", "check_fuzz"]

_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)) + "name: f\nsteps: []\n"

#: Documents meant to hurt a YAML loader, by name.
HOSTILE: dict[str, str | bytes] = {
    "alias bomb (billion laughs)": _BOMB,
    "deep nesting (100k brackets)": "name: f\nsteps: " + "[" * 100_000 + "]" * 100_000,
    "deep nesting (block mappings)": "".join(" " * i + f"k{i}:\n" for i in range(3000)),
    "huge scalar (9 MB)": "name: f\nsteps:\n  - name: a\n    run: " + "x" * 9_000_000 + "\n",
    "over the 10 MB limit": "name: f\n#" + "x" * 11_000_000,
    "binary": bytes(range(256)) * 64,
    "non-UTF-8 (latin-1)": "name: caf\xe9\nsteps: []\n".encode("latin-1"),
    "duplicate keys": "name: f\nname: g\nsteps:\n  - name: a\n    run: x\n    run: y\n",
    "python object tag": "name: !!python/object/apply:os.system ['echo hi']\nsteps: []\n",
    "unknown local tag": "name: !custom f\nsteps: []\n",
    "NUL characters": "name: f\x00\nsteps: []\n",
    "merge keys and anchors": "base: &b {run: x}\nname: f\nsteps:\n  - <<: *b\n    name: a\n",
}


class _Timer:
    def __init__(self) -> None:
        self.count = 0
        self.slowest = 0.0
        self.slowest_doc: str | bytes = ""

    def check(self, text: str | bytes, limit_s: float | None, first_line: int = 1) -> None:
        """``first_line=0`` accepts a problem of the whole file (one over the size limit).

        Time is the process's CPU time, and a document over the limit is timed once more: a
        document is slow when it is slow twice, not when the machine was busy once."""
        took = self._load(text, first_line)
        if limit_s is not None and took > limit_s:
            took = min(took, self._load(text, first_line))
            assert took <= limit_s, f"{took:.2f}s for a document: {text[:200]!r}"
        self.count += 1
        if took > self.slowest:
            self.slowest, self.slowest_doc = took, text

    @staticmethod
    def _load(text: str | bytes, first_line: int) -> float:
        started = time.process_time()
        try:
            result = loads(text, filename="fuzz.yaml", executors=REGISTRY)
        except SpecError as exc:
            assert exc.problems, "a SpecError without problems"
            for problem in exc.problems:
                where = problem.location
                assert where.file == "fuzz.yaml" and where.line >= first_line, (
                    f"a problem without a location: {problem}")
        except ChronumError as exc:
            assert "fuzz.yaml" in str(exc), f"a ChronumError without a location: {exc}"
        else:
            assert isinstance(result, Flow)
        return time.process_time() - started


def check_fuzz(examples: int, limit_s: float | None = 1.0) -> list[Figure]:
    """``examples`` structured flows, as many random texts and random byte strings, and the
    hostile documents; ``limit_s=None`` leaves the time per document unchecked (make test)."""
    timer = _Timer()
    fuzz = settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))

    @fuzz
    @given(flow)
    def structured(doc: dict[str, Any]) -> None:
        timer.check(yaml.safe_dump(doc, sort_keys=False), limit_s)

    @fuzz
    @given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(
        list("{}[]:-,&*!|>'\"#%@` \n\t")), max_size=400))
    def text(doc: str) -> None:
        timer.check(doc, limit_s)

    @fuzz
    @given(st.binary(max_size=400))
    def raw(doc: bytes) -> None:
        timer.check(doc, limit_s)

    for test in (structured, text, raw):
        test()
    fuzzed = timer.count
    hostile = _Timer()
    for doc in HOSTILE.values():
        hostile.check(doc, limit_s, first_line=0)
    return [
        Figure("fuzz", "documents fuzzed (structured flows, text, bytes): "
               "only ChronumError with a location", f"{fuzzed:,}, 0 other exceptions"),
        Figure("fuzz", "slowest fuzzed document (CPU time)", f"{timer.slowest * 1000:.0f} ms"),
        Figure("fuzz", f"hostile YAML ({len(HOSTILE)}: alias bomb, deep nesting, 9 MB scalar, "
               "binary, latin-1, duplicate keys, object tags ...)",
               f"{len(HOSTILE)}/{len(HOSTILE)} refused or loaded; slowest "
               f"{hostile.slowest * 1000:.0f} ms"),
    ]
