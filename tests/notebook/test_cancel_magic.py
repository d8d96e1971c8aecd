"""``%chronum cancel``: a run recorded by another host (a kernel on another machine sharing the
database) is cancelled only with ``--force``."""

from __future__ import annotations

from .conftest import text_of


def test_cancel_magic_needs_force_for_a_run_of_another_host(notebook, tmp_path):
    db = tmp_path / "nb.db"
    nb = notebook([
        "%load_ext chronum",
        f"%%chronum elsewhere --db {db}\nsteps:\n  - name: only\n    run: echo one\n",
        "import sqlite3\n"
        f"con = sqlite3.connect({str(db)!r})\n"
        "with con:\n"
        "    con.execute(\"update runs set status = 'running', host = 'far', pid = 1\")\n"
        "con.close()",
        f"%chronum cancel last --db {db}",
        f"%chronum cancel last --force --db {db}",
        f"import chronum\nprint(chronum.history(db={str(db)!r})['status'][0])",
    ], allow_errors=True)
    assert "UsageError" in text_of(nb.cells[3]) and "--force" in text_of(nb.cells[3])
    assert text_of(nb.cells[4]).endswith(
        "cancelled; anything it left running on host far was not stopped\n")
    assert text_of(nb.cells[5]) == "cancelled\n"
