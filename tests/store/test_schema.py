"""Opening files: migrations, a newer schema, read-only and non-database files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from chronum.errors import StoreError
from chronum.model import Flow
from chronum.store import MIGRATIONS, SCHEMA_VERSION, Store

from .conftest import failed_run_events, feed


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def test_a_new_file_is_at_the_latest_version_in_wal_mode(db_path: Path) -> None:
    Store(db_path).close()
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert {"runs", "steps", "attempts", "events"} <= {
        r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()


def test_an_older_database_is_migrated_and_keeps_its_rows(db_path: Path, flow: Flow) -> None:
    assert SCHEMA_VERSION >= 2
    db_path.parent.mkdir(parents=True)
    old = sqlite3.connect(db_path)
    old.executescript(str(MIGRATIONS[0]))  # what a version-1 Chronum created
    old.execute("PRAGMA user_version = 1")
    old.execute("INSERT INTO runs (run_id, flow, status, started_at, n_steps) "
                "VALUES ('old', 'legacy', 'succeeded', 1.0, 0)")
    old.commit()
    assert "log_path" not in _columns(old, "steps")
    old.close()

    with Store(db_path) as store:
        assert [r["run_id"] for r in store.history()] == ["old"]
        store.begin_run("new", flow)  # uses the columns version 2 added
        feed(store, *failed_run_events("new"))
        assert store.read_log("new", "build") == "compiling\n"
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert {"log_path", "log_tail"} <= _columns(conn, "steps")
    assert {"pid", "host", "proc_token"} <= _columns(conn, "runs")
    conn.close()


def test_a_database_from_a_newer_chronum_is_refused(db_path: Path) -> None:
    Store(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError) as info:
        Store(db_path)
    message = str(info.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in message
    assert "written by a newer Chronum" in message and str(db_path) in message


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database" * 100)
    with pytest.raises(StoreError) as info:
        Store(path)
    assert str(info.value).startswith(f"cannot open the Chronum database {path}: "
                                      "the file is not a SQLite database")


def _open_read_only_as_nobody(path: Path) -> subprocess.CompletedProcess[str]:
    """root writes through file modes, so the check runs in a child that drops to nobody."""
    code = (
        "import os, sys\n"
        "from chronum.errors import StoreError\n"
        "from chronum.store import Store\n"
        "os.setgid(65534); os.setuid(65534)  # after the imports: root's Python is private\n"
        "try:\n"
        "    Store(sys.argv[1])\n"
        "except StoreError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    print('opened')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, env=env, timeout=60, check=False)


def test_a_read_only_database_is_a_clear_store_error() -> None:
    # Not tmp_path: pytest makes it private to root, and the check may run as nobody.
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        path = Path(folder) / "chronum.db"
        conn = sqlite3.connect(path)  # an ordinary rollback-journal database, never opened yet
        conn.execute("CREATE TABLE t (x)")
        conn.close()
        os.chmod(path, 0o444)
        if os.geteuid() == 0:
            result = _open_read_only_as_nobody(path)
            assert result.returncode == 0, result.stderr
            message = result.stdout.strip()
        else:
            with pytest.raises(StoreError) as info:
                Store(path)
            message = str(info.value)
    assert message.startswith(f"cannot open the Chronum database {path}: "
                              "the file (or its folder) is read-only")
