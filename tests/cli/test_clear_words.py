"""Clear words where a traceback or silence used to be: every knob bounded, every path named.

Each case is the real ``chronum`` command in a subprocess; a user mistake is one line.
"""

from __future__ import annotations

import pytest

from tests.cli.conftest import Chronum

FLOW = """
    name: f
    steps:
      - name: a
        run: echo hi
"""


def _one_error_line(proc, code: int = 2) -> str:  # type: ignore[no-untyped-def]
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize("value", ["inf", "1e400", "nan", "-1", "99999", "soon"])
def test_kill_grace_nonsense_is_refused(chronum: Chronum, value: str):
    chronum.write("flow.yaml", FLOW)
    chronum.env["CHRONUM_KILL_GRACE"] = value
    line = _one_error_line(chronum("run", "flow.yaml"))
    assert line.startswith("chronum: error: CHRONUM_KILL_GRACE must be"), line


@pytest.mark.parametrize("name", ["CHRONUM_LOG_TAIL_LINES", "CHRONUM_LOG_TAIL_BYTES"])
def test_log_tail_nonsense_is_refused(chronum: Chronum, name: str):
    chronum.write("flow.yaml", FLOW)
    chronum.env[name] = "1e400"
    line = _one_error_line(chronum("run", "flow.yaml"))
    assert name in line, line


def test_a_huge_max_parallel_is_refused(chronum: Chronum):
    chronum.write("flow.yaml", FLOW)
    line = _one_error_line(chronum("run", "flow.yaml", "--max-parallel", "10" * 20))
    assert "max" in line and "parallel" in line, line


@pytest.mark.parametrize("target", ["missing/events.jsonl", "."], ids=["missing-folder", "folder"])
def test_events_jsonl_that_cannot_be_opened_is_one_line(chronum: Chronum, target: str):
    chronum.write("flow.yaml", FLOW)
    line = _one_error_line(chronum("run", "flow.yaml", "--events-jsonl", target))
    assert line.startswith("chronum: error: cannot write the events file"), line
    assert ("create the folder" in line) if target != "." else ("not a folder" in line), line


def test_graph_into_a_missing_folder_is_one_line(chronum: Chronum):
    chronum.write("flow.yaml", FLOW)
    line = _one_error_line(chronum("graph", "flow.yaml", "-o", "missing/g.dot"))
    assert "cannot write missing/g.dot" in line and "create the folder" in line, line


def test_logs_of_a_step_whose_file_name_is_too_long_is_one_line(chronum: Chronum):
    import sqlite3

    chronum.write("flow.yaml", FLOW)
    assert chronum("run", "flow.yaml").returncode == 0
    long = "s" * 300  # a run recorded before names were limited
    con = sqlite3.connect(chronum.db)
    with con:
        con.execute("UPDATE steps SET step = ?, log_path = NULL", (long,))
    con.close()
    line = _one_error_line(chronum("logs", "last", long), code=1)
    assert "cannot read the log of step" in line and "too long" in line, line


def test_params_that_reach_steps_as_one_variable_are_an_error_naming_both(chronum: Chronum):
    chronum.write("flow.yaml", """
        name: f
        params:
          a-b: "1"
          a_b: "2"
        steps:
          - name: a
            run: echo $CHRONUM_PARAM_A_B
    """)
    line = _one_error_line(chronum("validate", "flow.yaml"))
    assert line.startswith("flow.yaml:4:")
    assert "'a-b' and 'a_b' both reach steps as CHRONUM_PARAM_A_B" in line, line


@pytest.mark.parametrize("name", ["A B", "1ABC"])
def test_env_names_a_shell_cannot_read_are_located_errors(chronum: Chronum, name: str):
    chronum.write("flow.yaml", f"""
        name: f
        steps:
          - name: a
            run: echo hi
            env:
              "{name}": x
    """)
    line = _one_error_line(chronum("validate", "flow.yaml"))
    assert line.startswith("flow.yaml:6:"), line
    assert f"invalid environment variable name {name!r}" in line, line


def test_a_py_flow_raising_system_exit_is_one_line(chronum: Chronum):
    chronum.write("pipeline.py", """
        import sys
        sys.exit(3)
    """)
    line = _one_error_line(chronum("validate", "pipeline.py"))
    assert line.startswith("pipeline.py:2:"), line
    assert "raised SystemExit(3)" in line, line
