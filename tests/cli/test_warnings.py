"""Chronum's warnings go to the ``chronum`` logger; the command prints them as one line each."""

from __future__ import annotations

from pathlib import Path

from .conftest import Chronum


def test_a_warning_is_one_chronum_line_on_stderr_and_the_command_goes_on(chronum: Chronum,
                                                                         tmp_path: Path):
    cache = tmp_path / "cache"
    chronum.env["CHRONUM_CACHE_DIR"] = str(cache)
    flow = chronum.write("flow.yaml", "name: w\nsteps:\n  - {name: a, run: 'true'}\n")
    first = chronum("validate", str(flow))
    assert first.returncode == 0 and first.stderr == ""
    (cache / "flows").chmod(0o770)  # someone else could now write the cached entries
    second = chronum("validate", str(flow))
    assert second.returncode == 0, second.stderr
    (line,) = second.stderr.splitlines()
    assert line.startswith("chronum: warning: the flow cache entry ")
    assert "can be written by other users; it is not used" in line
    assert "Traceback" not in second.stderr
