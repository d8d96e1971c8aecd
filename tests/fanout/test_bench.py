"""``benchmarks/fanout.py``: its fan-out twin of W1 is W1's DAG with one step over the items,
and the harness runs end to end on a small size."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from chronum.spec import loads

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import workloads as wl  # noqa: E402

# By its path: ``fanout`` alone is this test package's name too.
_spec = importlib.util.spec_from_file_location("bench_fanout", BENCH / "fanout.py")
assert _spec is not None and _spec.loader is not None
fanout = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fanout)


def test_the_twin_of_w1_fans_out_over_the_same_noop():
    flow = loads(fanout.fanout_yaml(5), filename="f.yaml")
    each, join = flow.steps
    assert each.foreach == ("items", (0, 1, 2, 3, 4)) and each.call == f"{wl.NOOP_MODULE}:noop"
    assert join.needs == ("each",) and flow.max_parallel == wl.PARALLEL


def test_the_harness_measures_both_on_a_small_size(tmp_path: Path):
    cost = fanout.per_instance(20, 1, tmp_path)
    assert cost["n"] == 20 and len(cost["plain_s"]) == len(cost["fanout_s"]) == 1
    assert cost["ratio"] > 0
