"""Durable before released: the store writer's barrier commits what a starting step relies on,
one transaction for every waiter of a loop turn; and ``CHRONUM_DURABILITY``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import chronum
import chronum.eventbus as ev
from chronum.errors import StoreError, UsageError
from chronum.model import Flow
from chronum.store import Store
from chronum.store.schema import synchronous
from chronum.store.writer import StoreWriter


def _status(db: Path, run_id: str, step: str) -> str:
    con = sqlite3.connect(db)  # another connection: only what is committed
    try:
        return str(con.execute("SELECT status FROM steps WHERE run_id = ? AND step = ?",
                               (run_id, step)).fetchone()[0])
    finally:
        con.close()


class CountingStore(Store):
    """A real store that counts its commits (flushes with something to write)."""

    commits = 0

    def flush(self) -> None:
        if self._recorder._events:
            self.commits += 1
        super().flush()


def test_the_barrier_commits_what_was_recorded(db_path: Path, flow: Flow) -> None:
    async def main(store: Store) -> None:
        writer = StoreWriter(store, interval=3600)  # the timer never fires in this test
        store.begin_run("r1", flow)
        writer(ev.RunStarted(run_id="r1", at=1.0, flow=flow.name, steps=flow.step_names))
        writer(ev.StepStarted(run_id="r1", at=2.0, step="build", attempt=1))
        writer(ev.StepSucceeded(run_id="r1", at=3.0, step="build", attempt=1))
        writer(ev.StepStarted(run_id="r1", at=3.0, step="test", attempt=1))
        assert _status(db_path, "r1", "build") == "pending"
        await writer.barrier()
        assert _status(db_path, "r1", "build") == "succeeded"
        assert _status(db_path, "r1", "test") == "running"
        writer.close()

    with Store(db_path) as store:
        asyncio.run(main(store))


def test_waiters_of_one_loop_turn_share_one_commit(db_path: Path, flow: Flow) -> None:
    async def main(store: CountingStore) -> list[int]:
        writer = StoreWriter(store, interval=3600)
        store.begin_run("r1", flow)
        writer(ev.RunStarted(run_id="r1", at=1.0, flow=flow.name, steps=flow.step_names))

        async def start(step: str) -> None:
            writer(ev.StepStarted(run_id="r1", at=2.0, step=step, attempt=1))
            await writer.barrier()

        await asyncio.gather(start("build"), start("lint"))
        first = store.commits
        await start("test")  # a later turn: a commit of its own
        await writer.barrier()  # nothing new: waits for an empty flush, commits nothing
        return [first, store.commits]

    with CountingStore(db_path) as store:
        assert asyncio.run(main(store)) == [1, 2]


def test_a_cancelled_waiter_does_not_cancel_the_others(db_path: Path, flow: Flow) -> None:
    async def main(store: Store) -> None:
        writer = StoreWriter(store, interval=3600)
        store.begin_run("r1", flow)
        writer(ev.StepStarted(run_id="r1", at=2.0, step="build", attempt=1))
        first, second = writer.barrier(), writer.barrier()
        first.cancel()
        await second
        assert _status(db_path, "r1", "build") == "running"

    with Store(db_path) as store:
        asyncio.run(main(store))


def test_a_commit_that_fails_reaches_every_waiter(db_path: Path, flow: Flow) -> None:
    class Full(Store):
        def flush(self) -> None:
            raise StoreError("cannot write to the Chronum database: the disk is full")

    async def main(store: Store) -> list[BaseException | None]:
        writer = StoreWriter(store, interval=3600)
        results = await asyncio.gather(writer.barrier(), writer.barrier(),
                                       return_exceptions=True)
        return [r if isinstance(r, BaseException) else None for r in results]

    store = Full(db_path)
    try:
        errors = asyncio.run(main(store))
    finally:
        store._close(quiet=True)  # its flush refuses, as a full disk would
    assert all(isinstance(e, StoreError) and "disk is full" in str(e) for e in errors)


# -- a real run: what a step sees in the database when it starts -------------------------------


PROBE = textwrap.dedent("""\
    import sqlite3


    def noop():
        return None


    def check(ctx):
        # another connection, as a process reading the store after a crash would see it
        me = ctx.env["CHRONUM_STEP"]
        needs = next(s.needs for s in ctx.flow.steps if s.name == me)
        con = sqlite3.connect(ctx.env["PROBE_DB"])
        try:
            seen = [con.execute("SELECT step, status FROM steps WHERE run_id = ? AND step = ?",
                                (ctx.run_id, need)).fetchone() for need in needs]
            seen += con.execute("SELECT 'self', status FROM attempts WHERE run_id = ? AND "
                                "step = ? AND attempt = 1", (ctx.run_id, me)).fetchall()
        finally:
            con.close()
        return seen
    """)


def test_a_step_finds_what_it_needs_and_its_own_attempt_committed(tmp_path: Path) -> None:
    # in-process calls, so a step looks right after its needs ended (the ~50 ms timer alone
    # would not have committed them yet)
    db = tmp_path / "db" / "chronum.db"
    (tmp_path / "probe.py").write_text(PROBE)
    steps = [("a", "noop", []), ("b", "noop", []), ("c", "noop", []),
             ("d", "check", ["a", "b", "c"]), ("e", "check", ["d"])]
    lines = ["name: durable", "maxParallel: 4", "env:", f"  PROBE_DB: {json.dumps(str(db))}",
             "steps:"]
    for name, function, needs in steps:
        lines += [f"  - name: {name}", "    executor: python", f"    call: probe:{function}"]
        if needs:
            lines.append(f"    needs: [{', '.join(needs)}]")
    (tmp_path / "f.yaml").write_text("\n".join(lines) + "\n")
    run = chronum.run(tmp_path / "f.yaml", db=db)
    assert run.status == "succeeded", run.errors
    assert run.outputs["d"] == [("a", "succeeded"), ("b", "succeeded"), ("c", "succeeded"),
                                ("self", "running")]
    assert run.outputs["e"] == [("d", "succeeded"), ("self", "running")]


# -- CHRONUM_DURABILITY ---------------------------------------------------------------------


@pytest.mark.parametrize(("value", "level", "pragma"),
                         [("", "NORMAL", 1), ("normal", "NORMAL", 1), ("FULL", "FULL", 2)])
def test_durability_sets_synchronous(monkeypatch: pytest.MonkeyPatch, db_path: Path,
                                     value: str, level: str, pragma: int) -> None:
    monkeypatch.setenv("CHRONUM_DURABILITY", value)
    assert synchronous() == level
    with Store(db_path) as store:
        assert store._read(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) == pragma


def test_durability_nonsense_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch,
                                                 db_path: Path, tmp_path: Path) -> None:
    monkeypatch.setenv("CHRONUM_DURABILITY", "fsync-please")
    with pytest.raises(UsageError, match="CHRONUM_DURABILITY must be 'normal' or 'full', got "
                                         "'fsync-please'"):
        Store(db_path)
    (tmp_path / "f.yaml").write_text("name: f\nsteps:\n  - name: a\n    run: 'true'\n")
    done = subprocess.run([sys.executable, "-m", "chronum", "run", "f.yaml", "--db", str(db_path)],
                          cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "chronum: error: CHRONUM_DURABILITY must be 'normal' or 'full', got 'fsync-please'"]
