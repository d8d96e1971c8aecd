"""Ordering, cycles and reachability: file order decides ties, hashing never does."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from chronum import dag
from chronum.errors import SpecError
from chronum.model import Flow, Step


def make(*specs: str) -> Flow:
    """``make("a", "b:a", "c:a,b")``: each step, then the steps it needs."""
    steps = []
    for spec in specs:
        name, _, needs = spec.partition(":")
        steps.append(Step(name=name, run="x", needs=tuple(filter(None, needs.split(",")))))
    return Flow(name="f", steps=tuple(steps))


@pytest.mark.parametrize(
    ("specs", "expected"),
    [(("a", "b", "c"), ["a", "b", "c"]),
     (("c:b", "b:a", "a"), ["a", "b", "c"]),
     (("z", "y", "x:z", "w:y"), ["z", "y", "x", "w"]),
     (("d:b,c", "c:a", "b:a", "a"), ["a", "c", "b", "d"]),
     (("late:first", "other", "first"), ["other", "first", "late"])],
    ids=["independent", "reversed-chain", "two-chains", "diamond-written-backwards",
         "forward-reference"],
)
def test_order_respects_needs_and_file_order(specs, expected):
    assert dag.order(make(*specs)) == expected


def test_order_rejects_cycles_and_unknown_needs():
    with pytest.raises(SpecError, match=r"cycle: a -> b -> a"):
        dag.order(make("a:b", "b:a"))
    with pytest.raises(SpecError, match=r"unknown step 'nope'"):
        dag.order(make("a:nope"))


@pytest.mark.parametrize(
    ("edges", "expected"),
    [({"a": [], "b": ["a"]}, None),
     ({"a": ["a"]}, ["a", "a"]),
     ({"a": ["c"], "b": ["a"], "c": ["b"]}, ["a", "b", "c", "a"]),
     ({"c": ["b"], "b": ["a"], "a": ["c"]}, ["c", "a", "b", "c"]),
     ({"x": [], "y": ["q"], "p": ["y"], "q": ["p", "x"]}, ["y", "p", "q", "y"]),
     ({"down": ["b"], "a": ["b"], "b": ["a"]}, ["a", "b", "a"]),
     ({"a": ["b", "c"], "b": ["a"], "c": ["b"]}, ["a", "b", "a"]),
     ({"a": ["ghost"], "b": ["a"]}, None)],
    ids=["acyclic", "self", "triangle", "triangle-other-start", "cycle-after-acyclic",
         "downstream-of-cycle-written-first", "shortest-through-first", "unknown-ignored"],
)
def test_find_cycle(edges, expected):
    assert dag.find_cycle(edges) == expected


def test_downstream_and_upstream_as_sets():
    flow = make("a", "b:a", "c:b", "d:a", "e", "f:c,e")
    assert dag.downstream(flow, ["a"]) == {"b", "c", "d", "f"}
    assert dag.downstream(flow, ["b", "e"]) == {"c", "f"}
    assert dag.downstream(flow, ["a", "b"]) == {"b", "c", "d", "f"}
    assert dag.downstream(flow, []) == set()
    assert dag.upstream(flow, "f") == {"a", "b", "c", "e"}
    assert dag.upstream(flow, "a") == set()


def test_unknown_names_raise_key_error():
    flow = make("a")
    with pytest.raises(KeyError):
        dag.downstream(flow, ["zz"])
    with pytest.raises(KeyError):
        dag.upstream(flow, "zz")


def test_a_thousand_steps_order_in_linear_passes():
    specs = [f"s{i}" + (f":s{i - 1}" if i % 10 else "") for i in range(1000)]
    order = dag.order(make(*specs))
    assert order == [f"s{i}" for i in range(1000)]


_SCRIPT = """
import json, sys
from tests.dag.test_dag import make
from chronum import dag
names = [f"n{i}" for i in range(40)]
specs = [f"{n}:" + ",".join(names[j] for j in range(i) if (i * 7 + j) % 5 == 0)
         for i, n in enumerate(names)]
flow = make(*specs)
print(json.dumps([dag.order(flow), dag.find_cycle({"a": ["c"], "b": ["a"], "c": ["b"]}),
                  sorted(dag.downstream(flow, ["n0"]))]))
"""


def test_order_does_not_depend_on_hash_seed():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    outputs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": root}
        out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, cwd=root,
                             capture_output=True, text=True, check=True)
        outputs.add(out.stdout)
    assert len(outputs) == 1
    order, cycle, _ = json.loads(outputs.pop())
    assert cycle == ["a", "b", "c", "a"]
    assert len(order) == 40


class _CountingDict(dict):  # type: ignore[type-arg]
    """Counts lookups: the cycle search's work, without timing anything."""

    lookups = 0

    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        type(self).lookups += 1
        return super().__getitem__(key)


def _chain_behind_cycle(n: int) -> dict[str, list[str]]:
    """``n`` steps written first, each needing the one before; the first needs a 2-step cycle
    written last, so every chain step is downstream of the cycle."""
    edges: dict[str, list[str]] = {"s0": ["x"]}
    for i in range(1, n):
        edges[f"s{i}"] = [f"s{i - 1}"]
    edges["x"] = ["y"]
    edges["y"] = ["x"]
    return edges


def test_cycle_search_work_is_linear_in_the_steps(monkeypatch):
    counted = dag._dependents

    def counting(edges):  # type: ignore[no-untyped-def]
        return _CountingDict(counted(edges))

    monkeypatch.setattr(dag, "_dependents", counting)
    work = {}
    for n in (1_000, 4_000):
        _CountingDict.lookups = 0
        assert dag.find_cycle(_chain_behind_cycle(n)) == ["x", "y", "x"]
        work[n] = _CountingDict.lookups
    assert work[4_000] <= 3 * (4_000 + 2) * 2, work  # a few lookups per step and arrow
    assert work[4_000] < 5 * work[1_000], work  # four times the steps, about four times the work


def test_cycle_in_a_long_chain_is_found_without_recursion_limits():
    n = 50_000  # deeper than Python's recursion limit: the search must be iterative
    edges = {f"s{i}": [f"s{i + 1}"] for i in range(n - 1)}
    edges[f"s{n - 1}"] = ["s0"]
    cycle = dag.find_cycle(edges)
    assert cycle is not None and cycle[0] == cycle[-1] == "s0" and len(cycle) == n + 1
