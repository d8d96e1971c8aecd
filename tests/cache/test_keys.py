"""Step keys, what changed between two keys, the plan they make, and input files hashed once."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import chronum
from chronum.engine.cache import step_keys, why_changed
from chronum.errors import SpecError, UsageError
from chronum.spec import loads
from chronum.store import Store
from chronum.store.keys import InputHashes


def _flow(tmp_path: Path, text: str) -> chronum.model.Flow:
    (tmp_path / "flow.yaml").write_text(text)
    return chronum.load(tmp_path / "flow.yaml")


FLOW = """
name: k
params: {region: eu}
env: {MODE: fast}
steps:
  - name: a
    run: echo a
    inputs: [data.csv]
  - name: b
    run: echo b
    needs: [a]
    cacheKey: v1
  - name: c
    run: echo c
"""


def test_a_key_changes_with_its_parts_and_flows_downstream(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("1\n")
    base = step_keys(_flow(tmp_path, FLOW))
    assert base["b"].parts["need:a"] == base["a"].key
    assert step_keys(_flow(tmp_path, FLOW)) == base  # the same flow: the same keys

    (tmp_path / "data.csv").write_text("2\n")
    changed = step_keys(_flow(tmp_path, FLOW))
    assert changed["a"].key != base["a"].key and changed["b"].key != base["b"].key
    assert changed["c"].key == base["c"].key
    assert why_changed(changed["a"].parts, base["a"].parts) == "input data.csv changed"
    assert why_changed(changed["b"].parts, base["b"].parts, ran=["a"]) == "upstream a ran"

    edited = step_keys(_flow(tmp_path, FLOW.replace("cacheKey: v1", "cacheKey: v2")))
    assert why_changed(edited["b"].parts, changed["b"].parts) == "cacheKey changed (v1 → v2)"
    env = step_keys(_flow(tmp_path, FLOW.replace("fast", "slow")))
    assert why_changed(env["c"].parts, changed["c"].parts) == "env MODE changed"


def test_secrets_count_by_name_never_by_value(tmp_path: Path, monkeypatch) -> None:
    flow = _flow(tmp_path, "name: s\nsecrets: [TOKEN]\nsteps:\n  - name: a\n    run: echo\n")
    monkeypatch.setenv("TOKEN", "one")
    first = step_keys(flow)
    monkeypatch.setenv("TOKEN", "two")
    assert step_keys(flow) == first
    assert first["a"].parts["secret:TOKEN"] == ""
    assert "one" not in repr(first)


def test_a_function_key_follows_its_source(tmp_path: Path) -> None:
    flow = loads("name: f\nsteps:\n  - name: a\n    executor: python\n    call: work\n")

    def work():
        return 1

    first = step_keys(flow, namespace={"work": work})

    def work():  # redefined, as a notebook cell does
        return 2

    second = step_keys(flow, namespace={"work": work})
    assert first["a"].key != second["a"].key
    assert why_changed(second["a"].parts, first["a"].parts) == "definition changed"


def test_an_input_matching_nothing_is_a_located_error(tmp_path: Path) -> None:
    flow = _flow(tmp_path, "name: g\nsteps:\n  - name: a\n    run: echo\n"
                           "    inputs: [data/*.csv]\n")
    with pytest.raises(SpecError) as caught:
        step_keys(flow)
    assert str(caught.value) == (
        "flow.yaml:3:5: steps[0].inputs: input data/*.csv matched no file (create it, fix the "
        "path (relative to the flow's folder), or remove it from 'inputs')"
    ).replace("flow.yaml", str(tmp_path / "flow.yaml"))


def _read_bytes() -> int:
    with open("/proc/self/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("rchar:"))


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs /proc/self/io")
def test_an_input_is_read_once_then_never_while_unchanged(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    size = 8 * 1024 * 1024
    with open(big, "wb") as fh:
        fh.truncate(size)  # sparse: costs no disk
    old = time.time() - 60
    os.utime(big, (old, old))
    flow = _flow(tmp_path, "name: io\nsteps:\n  - name: a\n    run: echo\n"
                           "    inputs: [big.bin]\n")
    with Store(tmp_path / "db.sqlite") as store:
        memo = InputHashes(store)
        before = _read_bytes()
        first = step_keys(flow, memo=memo)
        read_first = _read_bytes() - before
        memo.save()
    with Store(tmp_path / "db.sqlite") as store:  # another run, another process's store
        memo = InputHashes(store)
        before = _read_bytes()
        second = step_keys(flow, memo=memo)
        read_second = _read_bytes() - before
    assert first == second
    assert read_first >= size
    assert read_second < 64 * 1024  # the database's pages, never the file


def test_sdk_flow_cache_options_and_from_only(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    calls: list[str] = []
    flow = chronum.Flow("sdk", cache=True)

    @flow.step()
    def load():
        calls.append("load")
        return 2

    @flow.step(cache=False)
    def clean(load):
        calls.append("clean")
        return load * 10

    @flow.step()
    def report(clean):
        calls.append("report")
        return clean + 1

    assert flow.run(db=db).ok
    run = flow.run(db=db)
    assert calls == ["load", "clean", "report", "clean", "report"]
    frame = run.steps
    assert dict(zip(frame.step, frame.status, strict=True)) == {
        "load": "cached", "clean": "succeeded", "report": "succeeded"}
    assert dict(zip(frame.step, frame.reason, strict=True))["clean"] == "cache off"
    calls.clear()
    assert flow.run(db=db, only=["report"]).outputs["report"] == 21
    assert calls == ["report"]
    calls.clear()
    assert flow.run(db=db, from_step="clean").ok
    assert calls == ["clean", "report"]
    with pytest.raises(UsageError, match="did you mean 'clean'"):
        flow.run(db=db, from_step="claen")


def test_the_step_table_shows_why_a_step_was_reused() -> None:
    from chronum.render.html import table_html

    rows = [{"step": "a", "status": "cached", "attempts": 0, "duration_s": None,
             "exit_code": None, "reason": "cached: same key as run 3fa2…, step a"},
            {"step": "b", "status": "succeeded", "attempts": 1, "duration_s": 0.5,
             "exit_code": 0, "reason": None}]
    page = table_html(rows)
    assert '<td class="chronum-reason">cached: same key as run 3fa2…, step a</td>' in page
    assert '<td class="chronum-reason"></td>' in page  # b: no reason, an empty cell
    assert 'data-state="cached"' in page
def test_resume_does_not_call_an_unseen_function_changed() -> None:
    from chronum.engine.plan import edited_since

    flow = loads("name: f\nsteps:\n  - name: a\n    executor: python\n    call: work\n")

    def work():
        return 1

    seen = step_keys(flow, namespace={"work": work})
    unseen = step_keys(flow)  # another process: the notebook's function is not defined here
    before = {"a": dict(seen["a"].parts)}
    assert edited_since(unseen, before, "r1") == {}
    assert edited_since(seen, before, "r1") == {}

    def work():  # redefined
        return 2

    assert edited_since(step_keys(flow, namespace={"work": work}), before, "r1") == {
        "a": "definition changed since run r1"}


class _Hit:
    def __init__(self, run_id: str, step: str, finished_at: float,
                 outputs: dict[str, str | None] | None = None) -> None:
        self.run_id, self.step, self.finished_at = run_id, step, finished_at
        self.outputs = outputs or {}


def test_the_plan_says_why_a_hit_is_not_taken() -> None:
    from chronum.engine.plan import plan_run

    flow = loads("name: p\nsteps:\n  - name: a\n    executor: python\n    call: m:f\n"
                 "    cacheFor: 1h\n  - name: b\n    executor: python\n    call: m:g\n"
                 "    needs: [a]\n    outputs: [out.txt]\n  - name: c\n    run: x\n"
                 "    needs: [b]\n")
    keys = step_keys(flow)

    def plan(hits, outputs, values):
        def value_of(run_id: str, step: str):
            if (run_id, step) not in values:
                raise KeyError(step)
            return values[(run_id, step)]

        return plan_run(flow, keys, enabled=lambda s: True, hits=hits, before={}, latest={},
                        value_of=value_of, outputs_now=lambda s: outputs, now=10_000.0,
                        functions={"a": lambda: 1, "b": lambda a: a})

    fresh = {"a": [_Hit("r1", "a", 9_000.0)], "b": [_Hit("r1", "b", 9_000.0, {"out.txt": "h"})],
             "c": [_Hit("r1", "c", 9_000.0)]}
    all_kept = plan(fresh, {"out.txt": "h"}, {})  # no step that runs needs a value
    assert dict(all_kept.kept) == {"a": "r1", "b": "r1", "c": "r1"}

    expired = {**fresh, "a": [_Hit("r0", "a", 1_000.0)]}
    got = plan(expired, {"out.txt": "h"}, {})
    assert got.reasons["a"] == "cache expired (older than 1h)"
    assert got.reasons["b"] == "no earlier result"  # a ran; nothing recorded before

    got = plan(fresh, {"out.txt": None}, {("r1", "a"): 5})
    assert dict(got.kept) == {"a": "r1"}
    assert got.reasons["b"] == "outputs missing: out.txt"
    assert got.reasons["c"] == "no earlier result"  # nothing recorded before: first time

    got = plan(fresh, {"out.txt": "other"}, {("r1", "a"): 5})
    assert got.reasons["b"] == "outputs changed: out.txt"
    assert dict(got.values) == {"a": 5}  # b runs and takes a's value

    got = plan(fresh, {"out.txt": "other"}, {})  # a's value is gone: a runs too
    assert got.reasons["a"] == "value gone"
    assert "a" not in got.kept and "b" not in got.kept
