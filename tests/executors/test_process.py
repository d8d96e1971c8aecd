"""run_process against real subprocesses: exit codes, streaming, big output, stopping trees."""

from __future__ import annotations

import asyncio
import os
import sys
import tracemalloc
from pathlib import Path

import pytest
from executor_helpers import Log, alive, gone_soon, group_members, wait_for_file, zombie_children

from chronum.executors.process import MAX_LINE, describe_exit, run_process

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def sh(script: str, log: Log, cwd: Path, grace: float = 0.5) -> int:
    argv = ["/bin/sh", "-c", script]
    return asyncio.run(run_process(argv, env=ENV, cwd=cwd, log=log, grace=grace))


@pytest.mark.parametrize(
    ("script", "code"),
    [("true", 0), ("exit 3", 3), ("no-such-command-xyz", 127), ("kill -9 $$", 137)],
    ids=["zero", "three", "sh-not-found", "sigkill"],
)
def test_exit_code_propagates(script: str, code: int, log: Log, tmp_path: Path) -> None:
    assert sh(script, log, tmp_path) == code


def test_missing_program_is_127_with_a_message(log: Log, tmp_path: Path) -> None:
    code = asyncio.run(run_process(["no-such-program-xyz"], env=ENV, cwd=tmp_path, log=log))
    assert code == 127
    assert log.stderr == ["chronum: command not found: no-such-program-xyz"]


def test_missing_cwd_is_1_with_a_message(log: Log, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    code = asyncio.run(run_process(["/bin/true"], env=ENV, cwd=missing, log=log))
    assert code == 1
    assert log.stderr == [f"chronum: working directory does not exist: {missing}"]


def test_not_executable_is_126(log: Log, tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    assert asyncio.run(run_process([str(script)], env=ENV, cwd=tmp_path, log=log)) == 126
    assert log.stderr == [f"chronum: permission denied: {script}"]


@pytest.mark.parametrize(
    ("code", "text"),
    [(0, "exited with code 0"), (3, "exited with code 3"), (137, "killed by signal SIGKILL"),
     (143, "killed by signal SIGTERM"), (127, "exited with code 127 (command not found)")],
    ids=["0", "3", "137", "143", "127"],
)
def test_describe_exit(code: int, text: str) -> None:
    assert describe_exit(code) == text


def test_lines_keep_their_order_per_stream(log: Log, tmp_path: Path) -> None:
    script = "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done"
    assert sh(script, log, tmp_path) == 0
    assert log.stdout == [f"out{i}" for i in range(1, 6)]
    assert log.stderr == [f"err{i}" for i in range(1, 6)]


def test_lines_arrive_while_the_process_runs(log: Log, tmp_path: Path) -> None:
    # The process cannot finish until the test creates `go`, which it does only after the
    # first line reached the sink: so the line was delivered while the process was running.
    async def scenario() -> int:
        started = log.when("started")
        task = asyncio.create_task(run_process(
            ["/bin/sh", "-c", "echo started; while [ ! -e go ]; do sleep 0.01; done; echo done"],
            env=ENV, cwd=tmp_path, log=log,
        ))
        await started.wait()
        assert not task.done()
        (tmp_path / "go").touch()
        return await task

    assert asyncio.run(scenario()) == 0
    assert log.stdout == ["started", "done"]


def test_final_line_without_newline_is_delivered(log: Log, tmp_path: Path) -> None:
    assert sh("printf 'a\\nb'; printf 'e' >&2", log, tmp_path) == 0
    assert log.stdout == ["a", "b"]
    assert log.stderr == ["e"]


def test_crlf_line_endings_are_stripped(log: Log, tmp_path: Path) -> None:
    assert sh("printf 'a\\r\\nb\\r\\n'", log, tmp_path) == 0
    assert log.stdout == ["a", "b"]


@pytest.mark.parametrize("char", ["x", "é", "€"], ids=["ascii", "2-byte", "3-byte"])
def test_long_line_is_delivered_in_chunks(char: str, log: Log, tmp_path: Path) -> None:
    count = 3 * MAX_LINE // len(char.encode()) + 1000
    code = asyncio.run(run_process(
        [sys.executable, "-c", f"print({char!r} * {count}); print('next')"],
        env={**ENV, "PYTHONIOENCODING": "utf-8"}, cwd=tmp_path, log=log,
    ))
    assert code == 0
    *chunks, last = log.stdout
    assert last == "next"
    assert len(chunks) == 4
    assert all(len(c.encode()) <= MAX_LINE for c in chunks)
    assert "".join(chunks) == char * count  # no character was split between chunks


def test_50_mb_of_output_keeps_memory_bounded(tmp_path: Path) -> None:
    seen = {"lines": 0, "bytes": 0}

    def count(stream: str, line: str) -> None:
        seen["lines"] += 1
        seen["bytes"] += len(line) + 1

    program = "import sys\nline = 'x' * 999 + '\\n'\nfor _ in range(50_000): sys.stdout.write(line)"
    tracemalloc.start()
    try:
        code = asyncio.run(run_process([sys.executable, "-c", program], env=ENV, cwd=tmp_path,
                                       log=count))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 0
    assert seen == {"lines": 50_000, "bytes": 50_000_000}
    assert peak < 8 * 1024 * 1024  # the output never sits in memory at once


def test_cancel_kills_the_whole_tree_even_when_sigterm_is_ignored(log: Log, tmp_path: Path) -> None:
    script = (
        "sh -c 'trap \"\" TERM; echo $$ > child.pid; echo ready; "
        "while :; do sleep 0.1; done' &\n"
        "echo $$ > leader.pid\n"
        "wait\n"
    )

    async def scenario() -> tuple[int, int]:
        ready = log.when("ready")
        task = asyncio.create_task(run_process(["/bin/sh", "-c", script], env=ENV, cwd=tmp_path,
                                               log=log, grace=0.5))
        await ready.wait()
        leader = int(await wait_for_file(tmp_path / "leader.pid"))
        child = int(await wait_for_file(tmp_path / "child.pid"))
        assert alive(child)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return leader, child

    leader, child = asyncio.run(scenario())
    assert gone_soon(leader)
    assert gone_soon(child)
    assert group_members(leader) == []


def test_background_grandchild_of_a_successful_step_is_killed(log: Log, tmp_path: Path) -> None:
    # The grandchild also holds stdout open: returning at all shows reading does not hang on it.
    assert sh("sleep 100 & echo $! > bg.pid; echo hi", log, tmp_path) == 0
    pid = int((tmp_path / "bg.pid").read_text())
    assert gone_soon(pid)
    assert log.stdout == ["hi"]


def test_env_is_exactly_the_given_mapping(log: Log, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    monkeypatch.setenv("CHRONUM_LEAK", "1")
    env = {**ENV, "GREETING": "hello world"}
    code = asyncio.run(run_process(
        ["/bin/sh", "-c", 'echo "$GREETING"; echo "${CHRONUM_LEAK-unset}"'],
        env=env, cwd=tmp_path, log=log,
    ))
    assert code == 0
    assert log.stdout == ["hello world", "unset"]


def test_cwd_is_honoured(log: Log, tmp_path: Path) -> None:
    sub = tmp_path / "sub dir"
    sub.mkdir()
    assert asyncio.run(run_process(["/bin/sh", "-c", "pwd -P"], env=ENV, cwd=sub, log=log)) == 0
    assert log.stdout == [str(sub.resolve())]


def test_invalid_utf8_is_replaced_not_fatal(log: Log, tmp_path: Path) -> None:
    assert sh("printf 'a\\377b\\n'", log, tmp_path) == 0
    assert log.stdout == ["a\ufffdb"]


def test_no_zombies_after_many_runs(tmp_path: Path) -> None:
    async def many() -> list[int]:
        codes = []
        for i in range(30):
            script = "sleep 100 & exit 2" if i % 3 == 0 else "echo x"
            codes.append(await run_process(["/bin/sh", "-c", script], env=ENV, cwd=tmp_path,
                                           log=lambda s, line: None))
        task = asyncio.create_task(run_process(["/bin/sh", "-c", "sleep 100"], env=ENV,
                                               cwd=tmp_path, log=lambda s, line: None))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return codes

    codes = asyncio.run(many())
    assert codes == [2 if i % 3 == 0 else 0 for i in range(30)]
    assert zombie_children() == []


def test_process_escaping_the_group_cannot_hold_the_step_open(log: Log, tmp_path: Path) -> None:
    # A daemon allowed to outlive the step (detach: allow) keeps stdout open; the step still
    # ends, with a note, instead of reading forever.
    daemon = (f"{sys.executable} -c 'import os, time; os.setsid(); "
              "open(\"daemon.pid\", \"w\").write(f\"{os.getpid()}\\n\"); time.sleep(60)' &")
    try:
        script = f"{daemon}\nwhile [ ! -s daemon.pid ]; do sleep 0.01; done; echo hi"
        assert asyncio.run(run_process(["/bin/sh", "-c", script], env=ENV, cwd=tmp_path,
                                       log=log, grace=0.5, detach=True)) == 0
        assert log.stdout == ["hi"]
        assert log.stderr[-1] == ("chronum: output still held open by a process outside the "
                                  "step's process group; stopped reading")
    finally:
        pid_file = tmp_path / "daemon.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), 9)
