"""``again=`` and ``chronum.cancel`` in Python."""

from __future__ import annotations

from pathlib import Path

import pytest

import chronum
from chronum.errors import UsageError


def test_again_resumes_a_run_whose_resume_succeeded(tmp_path: Path):
    flow = tmp_path / "f.yaml"
    flow.write_text(f"name: f\nsteps:\n  - name: a\n    run: test -e {tmp_path / 'ok'}\n")
    db = tmp_path / "db.sqlite"
    first = chronum.run(flow, db=db)
    assert first.status == "failed"
    (tmp_path / "ok").touch()
    second = first.resume()
    assert second.status == "succeeded"
    with pytest.raises(UsageError, match=f"already resumed by run {second.run_id}"):
        chronum.resume(first.run_id, db=db)
    third = first.resume(again=True)
    assert third.status == "succeeded" and third.run_id != second.run_id
    with pytest.raises(UsageError, match="is succeeded; only a running or interrupted run"):
        chronum.cancel(third.run_id, db=db)
