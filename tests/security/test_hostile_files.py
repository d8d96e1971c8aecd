"""Files from someone else: a database that is not Chronum's or was edited, log paths that point
out of the store, and hostile YAML. Each gives one line from the real ``chronum`` command,
never a traceback, never the content of a file outside the store, never code run."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

READERS = (("show", "last"), ("show", "last", "--format", "json"), ("history",),
           ("logs", "last"), ("export", "events"), ("export", "steps", "--format", "jsonl"),
           ("resume", "last"))


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chronum", *args], cwd=cwd,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
                          capture_output=True, text=True, timeout=120)


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("chronum: error: ")
    return lines[0]


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    """A real run's database, copied as ``crafted.db`` beside its logs for editing."""
    (tmp_path / "flow.yaml").write_text(textwrap.dedent("""
        name: real
        steps:
          - {name: a, run: echo hello}
          - {name: b, run: echo world, needs: a}
    """))
    proc = _cli(tmp_path, "run", "flow.yaml", "--db", "c.db", "-q")
    assert proc.returncode == 0, proc.stderr
    conn = sqlite3.connect(tmp_path / "c.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    (tmp_path / "crafted.db").write_bytes((tmp_path / "c.db").read_bytes())
    return tmp_path


def _edit(db: Path, *sql: str) -> None:
    conn = sqlite3.connect(db)
    for statement in sql:
        conn.execute(statement)
    conn.commit()
    conn.close()


def test_files_that_are_not_chronum_databases(tmp_path: Path) -> None:
    (tmp_path / "random.db").write_bytes(os.urandom(8192))
    conn = sqlite3.connect(tmp_path / "other.db")
    conn.execute("CREATE TABLE runs (x)")
    conn.execute("INSERT INTO runs VALUES (1)")
    conn.commit()
    conn.close()
    for name in ("random.db", "other.db"):
        for args in READERS:
            line = _one_line(_cli(tmp_path, *args, "--db", name))
            assert name in line


@pytest.mark.parametrize("edit", [
    "UPDATE runs SET params = '{not json', origin = '[1,'",
    "UPDATE events SET data = '{\"reason\": '",
    "UPDATE steps SET item = '{bad'",
    "UPDATE steps SET started_at = 'zzz'",
    "UPDATE steps SET finished_at = x'ff00'",
    "UPDATE runs SET started_at = 1000000000000000000",
    "UPDATE steps SET started_at = 1000000000000000000",
])
def test_an_edited_database_gives_one_line(recorded: Path, edit: str) -> None:
    _edit(recorded / "crafted.db", edit)
    readers = READERS if edit.startswith("UPDATE runs SET params") else \
        (("show", "last"), ("logs", "last"), ("export", "steps"), ("export", "events"))
    for args in readers:
        proc = _cli(recorded, *args, "--db", "crafted.db")
        assert "Traceback" not in proc.stderr, (args, proc.stderr)
        if proc.returncode != 0:
            _one_line(proc)


def test_a_database_cannot_make_logs_print_another_file(recorded: Path) -> None:
    private = recorded / "private.txt"
    private.write_text("PRIVATE-KEY-MATERIAL\n")
    (recorded / "logs" / "x").mkdir(parents=True, exist_ok=True)
    for stored in (str(private), "../private.txt", "logs/../private.txt",
                   "logs/x/../../private.txt"):
        _edit(recorded / "crafted.db", f"UPDATE steps SET log_path = '{stored}' WHERE step = 'a'")
        for args in (("logs", "last"), ("logs", "last", "a")):
            proc = _cli(recorded, *args, "--db", "crafted.db")
            assert "PRIVATE-KEY-MATERIAL" not in proc.stdout + proc.stderr, stored
            assert "outside its logs/ folder" in _one_line(proc)
    # a log file swapped for a link to another file is refused as well
    _edit(recorded / "crafted.db", "UPDATE steps SET log_path = NULL WHERE step = 'a'")
    [log] = (recorded / "logs").rglob("a.log")
    log.unlink()
    log.symlink_to(private)
    proc = _cli(recorded, "logs", "last", "a", "--db", "c.db")
    assert "PRIVATE-KEY-MATERIAL" not in proc.stdout
    assert "outside its logs/ folder" in _one_line(proc)
    # the real logs still print
    assert _cli(recorded, "logs", "last", "b", "--db", "c.db").stdout == "world\n"


@pytest.mark.parametrize(("text", "expected"), [
    ("a: &a ['x','x','x','x','x','x','x','x','x','x']\n" +
     "".join(f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
             f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
             f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8)),
     "expands to more than"),
    ("name: x\nsteps: !!python/object/apply:os.system ['touch pwned']\n", "flow.yaml:"),
    ("name: x\nsteps: " + "[" * 50_000 + "]" * 50_000 + "\n", "flow.yaml:"),
])
def test_hostile_yaml_is_one_line_quickly(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "flow.yaml").write_text(text)
    started = time.monotonic()
    for command in ("validate", "run"):
        proc = _cli(tmp_path, command, "flow.yaml", "--db", "c.db") if command == "run" else \
            _cli(tmp_path, command, "flow.yaml")
        assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert proc.returncode == 2 and expected in proc.stderr, proc.stderr[-500:]
    assert time.monotonic() - started < 30
    assert not (tmp_path / "pwned").exists()


EVIL = "import pathlib\npathlib.Path({marker!r}).write_text('ran')\nimport chronum\n" \
       "flow = chronum.Flow('real')\n"


def test_a_picture_of_a_past_run_never_runs_the_code_a_database_names(recorded: Path) -> None:
    """``chronum.show`` (and the dashboard's graph) rebuild a past run's flow from its file:
    only from a YAML or JSON file, never by running a ``.py`` flow a database points at."""
    marker = recorded / "pwned"
    (recorded / "evil.py").write_text(EVIL.format(marker=str(marker)))
    _edit(recorded / "crafted.db", f"UPDATE runs SET source = '{recorded / 'evil.py'}'")
    proc = subprocess.run(
        [sys.executable, "-c", "import chronum; chronum.show('last', db='crafted.db')"],
        cwd=recorded, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()


def test_the_dashboard_graph_never_runs_the_code_a_database_names(tmp_path: Path) -> None:
    from tests.serve.conftest import Served

    served = Served(tmp_path)
    try:
        served.wait_ready()
        flow = served.write("f.yaml", "name: f\nsteps:\n  - name: a\n    run: echo hi\n")
        served.run(flow)
        marker = tmp_path / "pwned"
        (tmp_path / "evil.py").write_text(EVIL.format(marker=str(marker)))
        _edit(served.db, f"UPDATE runs SET source = '{tmp_path / 'evil.py'}'")
        rid = served.get("/api/runs")["runs"][0]["run_id"]
        graph = served.get(f"/api/runs/{rid}/graph")
        assert 'data-step="a"' in graph["svg"]
        assert not marker.exists()
    finally:
        served.stop()
