"""A docker step writes ``key=value`` lines to ``$CHRONUM_OUTPUT`` as a shell step does: real
dockerd (conftest.py), real runs, real SQLite."""

from __future__ import annotations

import io
import os
import stat
import textwrap
from pathlib import Path

from docker_engine import Engine

import chronum
from chronum.api import show_logs
from chronum.executors.docker import CONTAINER_OUTPUT


def test_a_docker_step_s_outputs_reach_the_steps_below(engine: Engine, tmp_path: Path,
                                                        monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    (tmp_path / "flow.yaml").write_text(textwrap.dedent(f"""
        name: boxed-outputs
        steps:
          - name: count
            executor: docker
            image: {engine.image}
            pull: never
            run: |
              echo rows=3 >> "$CHRONUM_OUTPUT"
              echo "where=$CHRONUM_OUTPUT" >> "$CHRONUM_OUTPUT"
              printf 'note<<END\\nline one\\nline two\\nEND\\n' >> "$CHRONUM_OUTPUT"
          - name: report
            needs: count
            if: steps.count.outputs.rows > 2
            run: echo "rows=$CHRONUM_OUT_COUNT_ROWS" > report.txt
          - name: boxed-report
            executor: docker
            image: {engine.image}
            pull: never
            needs: count
            run: echo "$CHRONUM_OUT_COUNT_ROWS in a box" > boxed.txt
    """))
    db = tmp_path / "state.db"
    run = chronum.run(tmp_path / "flow.yaml", db=db, grace=1.0)
    assert run.status == "succeeded", run.errors
    assert run.outputs["count"] == {"rows": "3", "where": CONTAINER_OUTPUT,
                                    "note": "line one\nline two"}
    assert (tmp_path / "report.txt").read_text() == "rows=3\n"
    assert (tmp_path / "boxed.txt").read_text() == "3 in a box\n"
    steps = chronum.steps(db=db).set_index("step")
    assert steps.loc["report", "status"] == "succeeded"  # its if: read the output
    assert engine.containers() == []


def test_a_docker_step_that_writes_nothing_has_no_outputs(engine: Engine, tmp_path: Path,
                                                          monkeypatch):
    """The file mounted into the container is made empty first: nothing written, no outputs,
    and no folder left where the file should be."""
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    (tmp_path / "flow.yaml").write_text(textwrap.dedent(f"""
        name: boxed-quiet
        steps:
          - name: quiet
            executor: docker
            image: {engine.image}
            pull: never
            run: test -f "$CHRONUM_OUTPUT" && test -w "$CHRONUM_OUTPUT" && echo file
          - name: bad
            executor: docker
            image: {engine.image}
            pull: never
            run: echo "not an output line" >> "$CHRONUM_OUTPUT"
    """))
    db = tmp_path / "state.db"
    run = chronum.run(tmp_path / "flow.yaml", db=db, grace=1.0)
    states = chronum.steps(db=db).set_index("step")["status"].to_dict()
    assert states == {"quiet": "succeeded", "bad": "failed"}
    assert "quiet" not in run.outputs
    assert "expected 'key=value'" in run.errors["bad"]
    out = io.StringIO()
    show_logs(run.run_id, "quiet", db=db, out=out)
    assert out.getvalue().strip().splitlines()[-1].endswith("file")


def test_the_output_file_is_writable_by_any_container_user(tmp_path: Path):
    from chronum.executors.docker import _output_file

    path = tmp_path / "out"
    assert _output_file(str(path)) is None
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 and path.read_text() == ""
    assert "cannot make" in (_output_file(str(tmp_path / "missing" / "out")) or "")
