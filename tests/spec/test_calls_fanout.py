"""call: checks know what a fan-out instance is given: its item, and a matrix's values."""

from __future__ import annotations

from chronum.spec import check_calls, loads


def test_fanout_item_and_matrix_keys_are_given():
    flow = loads("name: f\nsteps:\n  - name: src\n    executor: python\n    call: src\n"
                 "  - name: each\n    executor: python\n    call: each\n    foreach: {from: src}\n"
                 "  - name: grid\n    executor: python\n    call: grid\n"
                 "    matrix: {region: [eu, us]}\n")
    def src(): return [1]
    def each(item): return item
    def grid(region): return region
    assert check_calls(flow, {"src": src, "each": each, "grid": grid}) == []
    def each(item, other): return item
    problems = check_calls(flow, {"src": src, "each": each, "grid": grid})
    assert len(problems) == 1 and "'other'" in str(problems[0])
