"""`chronum` ends like any Python program: atexit handlers run, the exit code is kept, and a
reader that closes the pipe early gets a quiet exit."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from .conftest import Chronum

HOOKS = """
    import atexit
    from pathlib import Path


    def _write():
        Path("atexit-ran.txt").write_text("ran")


    def register():
        atexit.register(_write)
        print("registered")
"""


@pytest.mark.parametrize(("last_step", "code"), [("true", 0), ("exit 3", 1)],
                         ids=["succeeded", "failed"])
def test_an_atexit_handler_of_a_call_step_runs_when_chronum_run_ends(
        chronum: Chronum, tmp_path: Path, last_step: str, code: int):
    chronum.write("hooks.py", HOOKS)
    chronum.write("f.yaml", f"""
        name: hooks
        steps:
          - name: register
            executor: python
            call: hooks:register
          - name: last
            run: "{last_step}"
            needs: [register]
    """)
    proc = chronum("run", "f.yaml")
    assert proc.returncode == code, proc.stderr
    assert "[register] registered" in proc.stdout
    assert (tmp_path / "atexit-ran.txt").read_text() == "ran"


def test_an_atexit_handler_runs_after_chronum_validate(chronum: Chronum, tmp_path: Path):
    # A sitecustomize module stands in for any code in the process that registers a handler.
    chronum.write("site/sitecustomize.py", textwrap.dedent(HOOKS) + "\n\nregister()\n")
    chronum.env["PYTHONPATH"] = str(tmp_path / "site")
    chronum.write("ok.yaml", """
        name: ok
        steps:
          - {name: a, run: "true"}
    """)
    chronum.write("bad.yaml", """
        name: bad
        steps:
          - {name: a, run: "true", needs: [b]}
    """)
    assert chronum("validate", "bad.yaml").returncode == 2
    assert (tmp_path / "atexit-ran.txt").read_text() == "ran"
    (tmp_path / "atexit-ran.txt").unlink()
    proc = chronum("validate", "ok.yaml")
    assert (proc.returncode, proc.stdout) == (0, "registered\nok.yaml: ok — flow 'ok', 1 step\n")
    assert (tmp_path / "atexit-ran.txt").read_text() == "ran"


def test_a_reader_that_stops_early_gets_a_quiet_exit(chronum: Chronum):
    # `chronum logs last | head -1`: the log is far bigger than a pipe's buffer, so chronum is
    # still writing when the reader goes away.
    chronum.write("f.yaml", """
        name: chatty
        steps:
          - name: talk
            run: seq 1 300000
    """)
    assert chronum("run", "f.yaml", "-q").returncode == 0
    del chronum.env["PYTHONUNBUFFERED"]  # buffered, as for a user: output is pending at exit
    proc = chronum.popen("logs", "last", "talk")
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == "1\n"
    proc.stdout.close()
    _, err = proc.communicate(timeout=30)
    assert (proc.returncode, err) == (0, "")


@pytest.mark.parametrize("args", [["history"], ["history", "--format", "json"],
                                  ["show", "last"], ["logs", "last"]],
                         ids=["history", "history-json", "show", "logs"])
def test_a_pipe_closed_before_the_first_write_is_quiet_too(chronum: Chronum, args: list[str]):
    chronum.write("f.yaml", """
        name: tiny
        steps:
          - {name: a, run: echo hi}
    """)
    assert chronum("run", "f.yaml", "-q").returncode == 0
    del chronum.env["PYTHONUNBUFFERED"]  # buffered, as for a user: output is pending at exit
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails with EPIPE
    try:
        proc = subprocess.run(chronum.argv(*args), cwd=chronum.cwd, env=chronum.env,
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (0, "")
