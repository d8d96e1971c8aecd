"""Importable step functions for the SDK tests (``call: sdk.steps:load`` in YAML)."""

from __future__ import annotations

from typing import Any


def load() -> list[int]:
    return [3, 1, 2]


def clean(load: list[int]) -> list[int]:
    return sorted(load)


def report(clean: list[int], ctx: Any = None) -> int:
    return sum(clean)


def needs_missing(lod: list[int]) -> int:
    return len(lod)
