"""The one bounded memory every per-process cache uses."""

from __future__ import annotations

import pytest

from chronum._lru import LRU


def test_setting_past_the_limit_drops_the_least_recently_used():
    memory: LRU[str, int] = LRU(2)
    memory["a"], memory["b"] = 1, 2
    assert memory.lookup("a") == 1  # a is now the most recent
    memory["c"] = 3
    assert list(memory) == ["a", "c"]


def test_setting_an_existing_key_refreshes_it():
    memory: LRU[str, int] = LRU(2)
    memory["a"], memory["b"] = 1, 2
    memory["a"] = 10
    memory["c"] = 3
    assert dict(memory) == {"a": 10, "c": 3}


def test_peeking_does_not_reorder_and_missing_keys_are_none():
    memory: LRU[str, int] = LRU(2)
    memory["a"], memory["b"] = 1, 2
    assert memory.get("a") == 1 and memory["a"] == 1
    memory["c"] = 3
    assert "a" not in memory
    assert memory.lookup("zzz") is None


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        LRU(0)
