"""The log tail kept in the database: bounded, and never empty because one line was long."""

from __future__ import annotations

from pathlib import Path

import pytest

from chronum.errors import UsageError
from chronum.store.logs import CUT_MARK, LogWriter, tail_limits


@pytest.mark.parametrize("length", [16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 1_000_000])
def test_a_last_line_as_long_as_the_tail_keeps_its_end_marked_cut(tmp_path: Path,
                                                                  length: int) -> None:
    writer = LogWriter(tmp_path / "s.log", tail_lines=100, tail_chars=16 * 1024)
    writer.write("first")
    line = "x" * (length - 4) + "END!"
    writer.write(line)
    writer.close()
    tail = writer.tail
    assert tail.endswith("END!")
    assert len(tail) <= 16 * 1024
    if length >= 16 * 1024:
        assert tail.startswith(CUT_MARK)
    assert (tmp_path / "s.log").read_text().splitlines()[-1] == line  # the file stays whole


def test_a_short_line_after_a_long_one_is_kept_whole(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "s.log", tail_lines=100, tail_chars=100)
    writer.write("y" * 1000)
    assert writer.tail.startswith(CUT_MARK) and len(writer.tail) == 99
    writer.write("done")  # the cut line filled the tail: the newer line takes its place
    writer.close()
    assert writer.tail == "done"


@pytest.mark.parametrize("value", ["inf", "1e400", "nan", "-1", "99999999999999999999", "x"])
@pytest.mark.parametrize("name", ["CHRONUM_LOG_TAIL_LINES", "CHRONUM_LOG_TAIL_BYTES"])
def test_tail_limits_reject_nonsense_with_the_variable_named(name: str, value: str) -> None:
    with pytest.raises(UsageError, match=name):
        tail_limits({name: value})


def test_tail_limits_default_and_accept_a_number() -> None:
    assert tail_limits({}) == (100, 16 * 1024)
    assert tail_limits({"CHRONUM_LOG_TAIL_LINES": "5", "CHRONUM_LOG_TAIL_BYTES": "0"}) == (5, 0)
