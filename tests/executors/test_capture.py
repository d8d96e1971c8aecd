"""fds 1 and 2 while a run has in-process steps: captured, masked, attributed, and put back on
every path (success, failure, cancel). In-process runs in the test process itself, so what is
checked is this process's own descriptors."""

from __future__ import annotations

import asyncio
import os
import textwrap
from pathlib import Path

import pytest

import chronum
from chronum.executors import capture

SECRET = "capture-Secret-93xk"


def _descriptors() -> tuple[tuple[int, int], tuple[int, int], set[int]]:
    one, two = os.fstat(1), os.fstat(2)
    return (one.st_dev, one.st_ino), (two.st_dev, two.st_ino), set(os.listdir("/proc/self/fd"))


@pytest.fixture
def flow_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CAP_TOKEN", SECRET)
    (tmp_path / "fd_capture_steps.py").write_text(textwrap.dedent("""
        import asyncio, os

        def write_and_fail():
            os.write(1, ("fd1 " + os.environ["CAP_TOKEN"] + "\\n").encode())
            raise RuntimeError("boom")

        async def slow():
            os.write(2, b"slow started\\n")
            await asyncio.sleep(30)
    """))
    for name, call in (("fails", "write_and_fail"), ("slow", "slow")):
        (tmp_path / f"{name}.yaml").write_text(textwrap.dedent(f"""
            name: {name}
            secrets: [CAP_TOKEN]
            steps:
              - {{name: {name}, executor: python, call: "fd_capture_steps:{call}"}}
        """))
    return tmp_path


def test_fds_are_put_back_after_a_failed_and_a_cancelled_run(flow_dir: Path) -> None:
    before = _descriptors()
    async def cancelled() -> None:
        slow = chronum.load(flow_dir / "slow.yaml")
        task = asyncio.ensure_future(chronum.arun(slow, db=flow_dir / "c.db"))
        await asyncio.sleep(1.0)
        assert capture._state is not None  # captured while the run is in progress
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled())
    assert capture._state is None
    assert _descriptors() == before

    ran = chronum.run(chronum.load(flow_dir / "fails.yaml"), db=flow_dir / "c.db")
    assert ran.status == "failed"
    assert capture._state is None
    assert _descriptors() == before
    log = (flow_dir / "logs" / ran.run_id / "fails.log").read_text()
    assert "fd1 ***" in log and SECRET not in log


def test_nothing_is_captured_without_in_process_steps(tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text("name: sh\nsteps:\n  - {name: a, run: echo hi}\n")
    seen: list[object] = []
    ran = chronum.run(chronum.load(tmp_path / "f.yaml"), db=tmp_path / "c.db",
                      subscribers=[lambda e: seen.append(capture._state)])
    assert ran.status == "succeeded"
    assert seen and all(state is None for state in seen)
