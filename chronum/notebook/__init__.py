"""Chronum in Jupyter: ``%load_ext chronum`` registers ``%%chronum`` and ``%chronum``.

IPython and ipywidgets are imported only when the extension is loaded or a view is built, so
``chronum.show`` and ``Run``'s rich display work in plain Python too.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ip: Any) -> None:
    from .magics import load_ipython_extension as load

    load(ip)


def unload_ipython_extension(ip: Any) -> None:
    from .magics import unload_ipython_extension as unload

    unload(ip)
