"""Values across resumes: in the same process, from `persist` files, and rebuilt when gone."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest

import chronum
import chronum.spec
from chronum.errors import SpecError
from chronum.store.values import MISSING, load_value, save_value, values_dir


def test_same_process_resume_keeps_values_and_uses_the_fixed_function(tmp_path: Path):
    flow = chronum.Flow("nb-style")
    calls: list[str] = []
    broken = [True]

    @flow.step()
    def load() -> pd.DataFrame:
        calls.append("load")
        return pd.DataFrame({"x": [1, 2, 3]})

    @flow.step()
    def report(load: pd.DataFrame) -> int:
        if broken[0]:
            raise RuntimeError("not yet")
        return int(load["x"].sum())

    first = flow.run(db=tmp_path / "db.sqlite")
    assert first.status == "failed"
    broken[0] = False
    second = first.resume()
    assert second.status == "succeeded" and calls == ["load"]
    assert second.outputs["report"] == 6
    assert second.steps["status"].tolist() == ["cached", "succeeded"]


def test_persist_in_yaml_keeps_the_value_in_the_run_folder(tmp_path: Path):
    (tmp_path / "mod.py").write_text("def make():\n    return {'a': 1}\n")
    (tmp_path / "flow.yaml").write_text(textwrap.dedent("""
        name: kept
        steps:
          - name: make
            executor: python
            call: mod:make
            persist: true
    """))
    run = chronum.run(tmp_path / "flow.yaml", db=tmp_path / "db" / "c.db")
    assert run.status == "succeeded"
    folder = values_dir(tmp_path / "db" / "c.db", run.run_id)
    assert folder is not None and load_value(folder, "make") == {"a": 1}


def test_persist_needs_a_call_step():
    with pytest.raises(SpecError, match=r"steps\[0\].persist: 'persist' keeps a function's "
                                        r"return value; only a step with 'call' has one"):
        chronum.spec.loads("name: x\nsteps:\n  - name: a\n    run: 'true'\n    persist: true\n")


def test_a_value_that_cannot_be_kept_fails_the_step(tmp_path: Path):
    flow = chronum.Flow("unpicklable")

    @flow.step(persist=True)
    def gen() -> object:
        return (i for i in range(3))  # generators cannot be pickled

    run = flow.run(db=tmp_path / "db.sqlite")
    assert run.status == "failed"
    assert run.errors["gen"].startswith("cannot keep the value of 'gen': TypeError")


def test_values_round_trip_and_missing_is_not_none(tmp_path: Path):
    frame = pd.DataFrame({"city": ["Oslo", "Lima"], "t": [3.5, 19.0]})
    path = save_value(tmp_path, "frame", frame)
    assert path.suffix in (".parquet", ".pickle")
    pd.testing.assert_frame_equal(load_value(tmp_path, "frame"), frame)
    save_value(tmp_path, "nothing", None)
    assert load_value(tmp_path, "nothing") is None
    assert load_value(tmp_path, "absent") is MISSING
    assert values_dir(Path(":memory:"), "r1") is None


def test_dataframes_are_parquet_when_pyarrow_is_installed(tmp_path: Path):
    pytest.importorskip("pyarrow")
    path = save_value(tmp_path, "frame", pd.DataFrame({"a": [1]}))
    assert path.name == "frame.parquet"
