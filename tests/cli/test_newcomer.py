"""A newcomer's first mistakes at the terminal: each is one clear line and an exit code a script
can use, and the store is left as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import chronum as chronum_api
from chronum.errors import RunNotFoundError, StoreError

from .conftest import Chronum

OK = """
    name: ok
    steps:
      - name: a
        run: echo hi
"""


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_a_folder_given_as_the_flow_names_the_flow_files_in_it(chronum: Chronum) -> None:
    chronum.write("flows/etl.yaml", OK)
    chronum.write("flows/notes.txt", "not a flow")
    for command in ("run", "validate", "graph"):
        proc = chronum(command, "flows")
        assert proc.returncode == 2, proc.stderr
        assert _one_line(proc.stderr) == (
            "flows: is a folder, not a flow file (name a flow file in it: flows/etl.yaml)")
    (chronum.cwd / "empty").mkdir()
    proc = chronum("run", "empty")
    assert proc.returncode == 2
    assert _one_line(proc.stderr).startswith(
        "empty: is a folder, not a flow file (give the path of a flow file (.json, ")


def test_a_missing_flow_file_is_one_line(chronum: Chronum) -> None:
    proc = chronum("run", "nope.yaml")
    assert proc.returncode == 2
    assert _one_line(proc.stderr) == (
        "nope.yaml: cannot read the flow file: No such file or directory")


def test_a_cycle_is_one_located_line(chronum: Chronum) -> None:
    chronum.write("cycle.yaml", """
        name: c
        steps:
          - name: a
            run: echo a
            needs: [b]
          - name: b
            run: echo b
            needs: [a]
    """)
    proc = chronum("run", "cycle.yaml")
    assert proc.returncode == 2
    assert _one_line(proc.stderr) == (
        "cycle.yaml:3:5: steps[0]: cycle: a -> b -> a "
        "(remove one need on this loop, e.g. 'b' from the needs of 'a')")
    assert not chronum.db.exists()  # nothing was recorded for a flow that cannot run


def test_a_misspelt_run_or_call_is_one_problem(chronum: Chronum) -> None:
    chronum.write("typo.yaml", """
        name: typo
        steps:
          - name: a
            runn: echo a
          - name: b
            executor: python
            cal: mod:fn
          - name: c
    """)
    proc = chronum("validate", "typo.yaml")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "typo.yaml:4:5: steps[0]: unknown key 'runn' (did you mean 'run'?)",
        "typo.yaml:7:5: steps[1]: unknown key 'cal' (did you mean 'call'?)",
        "typo.yaml:8:5: steps[2]: a shell step needs 'run'",
        "3 problems found",
    ]


@pytest.mark.parametrize(("value", "error"), [
    ("soon", "expected seconds or a duration, got a string 'soon' (write a number of seconds "
             "or a duration like 90s, 10m, 2h or 1h30m)"),
    ("0s", "must be greater than 0, got 0s"),
    ("400d", "must be at most 365d, got 400d"),
])
def test_cache_for_is_checked_as_every_duration(chronum: Chronum, value: str,
                                                error: str) -> None:
    chronum.write("f.yaml", f"""
        name: f
        steps:
          - name: a
            run: echo a
            cacheFor: {value}
    """)
    proc = chronum("validate", "f.yaml")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == f"f.yaml:5:15: steps[0].cacheFor: {error}"


def test_cache_for_reads_every_duration_form(tmp_path: Path) -> None:
    flow = chronum_api.load(_write(tmp_path / "f.yaml", "name: f\nsteps:\n"
                               "  - {name: a, run: x, cacheFor: 1h30m}\n"
                               "  - {name: b, run: x, cacheFor: 90}\n"))
    assert [s.cache_for for s in flow.steps] == [5400, 90]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_another_programs_sqlite_file_is_refused_and_left_alone(chronum: Chronum) -> None:
    chronum.write("f.yaml", OK)
    other = chronum.cwd / "notes.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.close()
    for args in (("run", "f.yaml"), ("history",), ("show", "last")):
        proc = chronum(*args, "--db", str(other))
        assert proc.returncode == 1, proc.stderr
        assert _one_line(proc.stderr) == (
            f"chronum: error: {other} is a SQLite database but not a Chronum store (its "
            "tables: notes); point --db / CHRONUM_DB at a new file or an existing Chronum "
            "database")
    with sqlite3.connect(other) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
        assert tables == ["notes"]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    conn.close()
    with pytest.raises(StoreError, match="not a Chronum store"):
        chronum_api.history(db=other)


def test_an_empty_sqlite_file_becomes_a_store(chronum: Chronum) -> None:
    chronum.write("f.yaml", OK)
    empty = chronum.cwd / "empty.db"
    sqlite3.connect(empty).close()
    proc = chronum("run", "f.yaml", "--db", str(empty))
    assert proc.returncode == 0, proc.stderr
    assert chronum_api.runs(db=empty)["status"].tolist() == ["succeeded"]


def test_runs_is_the_history_frame(chronum: Chronum) -> None:
    chronum.write("f.yaml", OK)
    assert chronum("run", "f.yaml").returncode == 0
    runs = chronum_api.runs(db=chronum.db)
    assert runs.equals(chronum_api.history(db=chronum.db))
    assert runs["flow"].tolist() == ["ok"]


def test_unknown_run_ids_are_one_line(chronum: Chronum) -> None:
    chronum.write("f.yaml", OK)
    assert chronum("run", "f.yaml").returncode == 0
    for args in (("show", "zzz"), ("logs", "zzz"), ("resume", "zzz")):
        proc = chronum(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "zzz" in _one_line(proc.stderr)


def test_a_reader_that_stops_early_ends_no_run_and_prints_no_warning(chronum: Chronum) -> None:
    steps = "".join(f"  - name: s{i}\n    run: seq 3000\n" for i in range(20))
    chronum.write("many.yaml", "name: many\nsteps:\n" + steps)
    # `chronum run many.yaml | head -1`: head exits after one line, closing the pipe
    producer = chronum.popen("run", "many.yaml")
    assert producer.stdout is not None
    first = producer.stdout.readline()
    producer.stdout.close()
    _, err = producer.communicate(timeout=60)
    assert first.startswith("▶ many · run ")
    assert producer.returncode == 0
    assert err == ""
    assert chronum.json("show", "last")["status"] == "succeeded"


def test_serve_prints_its_address_and_nothing_else(chronum: Chronum) -> None:
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = chronum.popen("serve", "--port", str(port))
    try:
        assert proc.stderr is not None
        first, second = proc.stderr.readline(), proc.stderr.readline()
        assert first == (f"chronum serve: the dashboard of {chronum.db} at "
                         f"http://127.0.0.1:{port}/\n")
        assert second.startswith(f"chronum serve: open http://127.0.0.1:{port}/#token=")
        deadline = time.monotonic() + 20
        while True:  # the server answers: whatever it printed while starting is in the pipe
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "chronum serve did not answer"
                time.sleep(0.1)
    finally:
        proc.terminate()
        _, rest = proc.communicate(timeout=20)
    assert rest == ""  # no deprecation warning of a library the user did not choose


def test_steps_written_without_list_dashes_says_how_to_fix_it(chronum: Chronum) -> None:
    chronum.write("f.yaml", """
        name: f
        steps:
          name: a
          run: echo a
    """)
    proc = chronum("run", "f.yaml")
    assert proc.returncode == 2
    assert _one_line(proc.stderr) == (
        "f.yaml:3:3: steps: expected a list of steps, got a mapping (start each step with "
        "'- ', as in '  - name: build')")


def test_reading_a_database_not_made_yet_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "nowhere" / "runs.db"
    assert chronum_api.runs(db=db).empty
    assert list(chronum_api.steps(db=db, since=0).columns[:2]) == ["run_id", "flow"]
    with pytest.raises(RunNotFoundError, match=f"no runs recorded yet in {db}"):
        chronum_api.steps(db=db)
    with pytest.raises(RunNotFoundError, match=f"no run matches 'abc': no runs recorded yet "
                                               f"in {db}"):
        chronum_api.show("abc", db=db)
    assert not (tmp_path / "nowhere").exists()
