"""Chronum in Jupyter: ``%load_ext chronum`` registers ``%%chronum`` and ``%chronum``.

IPython is imported only when the extension is loaded or a view is built, so
``chronum.show`` and ``Run``'s rich display work in plain Python too.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["load_ipython_extension", "unload_ipython_extension"]

# What the extension imports from the ``notebook`` extra; a missing one is named in one line.
_EXTRA = ("IPython",)

_PYODIDE_NOTICE = (
    "chronum: in JupyterLite (Pyodide) there are no subprocesses and no threads: only "
    "`async def` functions called with `call:` can run here; shell, script and docker steps "
    "and plain `def` functions need a regular Jupyter kernel."
)


def _in_pyodide() -> bool:
    """Whether Python runs in the browser (Pyodide, as JupyterLite's kernel does)."""
    return sys.platform == "emscripten"


def load_ipython_extension(ip: Any) -> None:
    try:
        from .magics import load_ipython_extension as load
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in _EXTRA:
            raise
        raise _missing_extra(missing) from None
    load(ip)
    if _in_pyodide():  # said once here, rather than as one failure per step later
        print(_PYODIDE_NOTICE)


def _missing_extra(module: str) -> Exception:
    """IPython's UsageError when IPython is there (it shows the line without a traceback)."""
    message = (f"chronum: the notebook extension needs {module}; "
               "install it with: pip install 'chronum[notebook]'")
    try:
        from IPython.core.error import UsageError
    except ImportError:
        return ModuleNotFoundError(message, name=module)
    return UsageError(message)


def unload_ipython_extension(ip: Any) -> None:
    from .magics import unload_ipython_extension as unload

    unload(ip)
