"""Session set-up for the whole suite: Chronum's caches go to a temporary folder.

Set through ``os.environ`` before any test runs, so the CLI subprocesses the tests start
inherit it too, and nothing the suite loads is written into the user's ``~/.cache``.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_saved: dict[str, str | None] = {}
_folder: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    folder = tempfile.mkdtemp(prefix="chronum-test-cache-")
    _folder.append(folder)
    _saved["CHRONUM_CACHE_DIR"] = os.environ.get("CHRONUM_CACHE_DIR")
    os.environ["CHRONUM_CACHE_DIR"] = folder


def pytest_unconfigure(config: pytest.Config) -> None:
    previous = _saved.pop("CHRONUM_CACHE_DIR", None)
    if previous is None:
        os.environ.pop("CHRONUM_CACHE_DIR", None)
    else:
        os.environ["CHRONUM_CACHE_DIR"] = previous
    while _folder:
        shutil.rmtree(_folder.pop(), ignore_errors=True)
