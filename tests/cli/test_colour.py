"""Colour of `chronum run`'s progress: --color, then NO_COLOR, then FORCE_COLOR, then a TTY.

Each case is a real `chronum run`, its stdout a pipe or a pseudo-terminal. Colour (SGR
sequences, ``ESC[...m``) is decided apart from the live view (cursor moves, ``ESC[...F``), so
both are asserted on their own.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess

import pytest

from .conftest import Chronum

SGR = re.compile(r"\x1b\[[0-9;]*m")
REDRAW = re.compile(r"\x1b\[[0-9]+F\x1b\[J")  # the live view moves up over its status block

FLOW = """
    name: colours
    steps:
      - name: build
        run: echo compiling
      - name: test
        run: exit 3
        needs: [build]
"""


def _env(chronum: Chronum, variables: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in chronum.env.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    return {**env, "TERM": "xterm", **variables}


def _run_on_a_pipe(chronum: Chronum, flags: list[str], variables: dict[str, str]) -> str:
    proc = subprocess.run(chronum.argv("run", "f.yaml", *flags), cwd=chronum.cwd,
                          env=_env(chronum, variables), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1, proc.stderr
    return proc.stdout


def _run_on_a_terminal(chronum: Chronum, flags: list[str], variables: dict[str, str]) -> str:
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(chronum.argv("run", "f.yaml", *flags), cwd=chronum.cwd,
                                env=_env(chronum, variables), stdin=subprocess.DEVNULL,
                                stdout=terminal, stderr=subprocess.PIPE)
    finally:
        os.close(terminal)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: every process holding the terminal has closed it
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(controller)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    return b"".join(chunks).decode()


@pytest.mark.parametrize(
    ("flags", "variables", "coloured"),
    [
        ([], {}, False),
        ([], {"FORCE_COLOR": "1"}, True),
        (["--color", "always"], {}, True),
        (["--color", "always"], {"NO_COLOR": "1"}, True),
        ([], {"NO_COLOR": "1", "FORCE_COLOR": "1"}, False),
        (["--color", "never"], {"FORCE_COLOR": "1"}, False),
        ([], {"FORCE_COLOR": ""}, False),
    ],
    ids=["plain", "FORCE_COLOR", "always", "always-beats-NO_COLOR", "NO_COLOR-beats-FORCE_COLOR",
         "never-beats-FORCE_COLOR", "empty-FORCE_COLOR-is-unset"],
)
def test_a_pipe_gets_plain_lines_coloured_only_when_asked(
        chronum: Chronum, flags: list[str], variables: dict[str, str], coloured: bool):
    chronum.write("f.yaml", FLOW)
    out = _run_on_a_pipe(chronum, flags, variables)
    assert bool(SGR.search(out)) is coloured
    assert not REDRAW.search(out)
    plain = SGR.sub("", out).splitlines()
    assert "[build] compiling" in plain
    assert any(line.startswith("[test] failed in ") for line in plain)
    if coloured:  # the state changes are coloured, a step's own output never
        assert "\x1b[31m[test] failed in " in out
        assert "\n[build] compiling\n" in out


@pytest.mark.parametrize(
    ("flags", "variables", "coloured"),
    [
        ([], {}, True),
        ([], {"NO_COLOR": "1"}, False),
        ([], {"NO_COLOR": ""}, True),
        (["--color", "never"], {}, False),
        (["--color", "always"], {"NO_COLOR": "1"}, True),
    ],
    ids=["tty", "NO_COLOR", "empty-NO_COLOR-is-unset", "never", "always-beats-NO_COLOR"],
)
def test_a_terminal_gets_the_live_view_coloured_unless_told_not_to(
        chronum: Chronum, flags: list[str], variables: dict[str, str], coloured: bool):
    chronum.write("f.yaml", FLOW)
    out = _run_on_a_terminal(chronum, flags, variables)
    assert REDRAW.search(out), out
    assert "1/2 steps" in out or "2/2 steps" in out  # the progress bar of the live view
    assert bool(SGR.search(out)) is coloured
    assert "[test] failed in " in SGR.sub("", out)


def test_resume_takes_the_same_flag(chronum: Chronum):
    chronum.write("f.yaml", FLOW)
    _run_on_a_pipe(chronum, [], {})
    proc = subprocess.run(chronum.argv("resume", "last", "--color", "always"), cwd=chronum.cwd,
                          env=_env(chronum, {}), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "\x1b[31m[test] failed in " in proc.stdout
