"""The reliability rows of bounded time and loud failures, at small sizes (``make
reliability`` runs them at full size, and only there is the cycle check's time asserted)."""

from __future__ import annotations

from pathlib import Path

from reliability.edges import check_cycle_linear, check_database_removed


def test_the_cycle_check_of_a_chain_behind_a_cycle_finds_the_cycle() -> None:
    (figure,) = check_cycle_linear(2_000)
    ratio, _, seconds = figure.figure.partition("x (")
    assert float(ratio) > 0 and seconds.endswith(" s)"), figure.figure


def test_a_database_removed_mid_run_is_reported(tmp_path: Path) -> None:
    (figure,) = check_database_removed(tmp_path)
    assert figure.figure.endswith("reported")
