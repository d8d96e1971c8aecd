"""Run references: ``last``, a full id, or a unique prefix; helpful errors otherwise."""

from __future__ import annotations

import pytest

from chronum.errors import RunNotFoundError
from chronum.model import Flow
from chronum.store import Store

IDS = ["20240101-aaa111", "20240101-aab222", "20240102-ccc333"]


@pytest.fixture
def three_runs(store: Store, flow: Flow) -> Store:
    for run_id in IDS:
        store.begin_run(run_id, flow)
    return store


@pytest.mark.parametrize(
    ("ref", "expected"),
    [("last", IDS[2]), ("20240102", IDS[2]), ("20240101-aaa", IDS[0]), (IDS[1], IDS[1]),
     ("  20240101-aab  ", IDS[1])],
    ids=["last", "prefix", "longer-prefix", "full-id", "spaces"],
)
def test_resolves(three_runs: Store, ref: str, expected: str) -> None:
    assert three_runs.resolve_run(ref) == expected


def test_a_full_id_wins_over_being_a_prefix_of_another(store: Store, flow: Flow) -> None:
    store.begin_run("abc", flow)
    store.begin_run("abcd", flow)
    assert store.resolve_run("abc") == "abc"


def test_ambiguous_prefix_lists_the_matches(three_runs: Store) -> None:
    with pytest.raises(RunNotFoundError) as info:
        three_runs.resolve_run("20240101-aa")
    assert str(info.value) == (
        "run '20240101-aa' is ambiguous: it matches 20240101-aaa111, 20240101-aab222; "
        "give more characters of the run id"
    )


def test_no_match_shows_the_latest_runs(three_runs: Store) -> None:
    with pytest.raises(RunNotFoundError) as info:
        three_runs.resolve_run("zzz")
    assert str(info.value) == (
        f"no run matches 'zzz' in {three_runs.path}; the latest runs are: "
        "20240102-ccc333, 20240101-aab222, 20240101-aaa111 (or use 'last')"
    )


def test_empty_store(store: Store) -> None:
    with pytest.raises(RunNotFoundError, match=r"no runs recorded yet in .*chronum\.db"):
        store.resolve_run("last")
    with pytest.raises(RunNotFoundError, match="no run matches 'abc': no runs recorded yet"):
        store.resolve_run("abc")


def test_unknown_run_for_run(three_runs: Store) -> None:
    with pytest.raises(RunNotFoundError, match="no run 'nope'"):
        three_runs.run("nope")
