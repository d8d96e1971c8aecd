"""Where a notebook cell's code is, said as IPython says it: ``Cell In[5]``.

IPython compiles each cell from a temporary file (``/tmp/ipykernel_123/4567.py``); a flow
defined in a cell would otherwise name that path in its errors, which the user never saw.
IPython's own compiler knows which cell each such file was, and tracebacks use its name.
"""

from __future__ import annotations

import sys

__all__ = ["cell_name"]


def cell_name(file: str) -> str:
    """``Cell In[n]`` for the file of a notebook cell of the running IPython, else ``file``."""
    if "IPython" not in sys.modules:
        return file
    from IPython import get_ipython

    format_code_name = getattr(getattr(get_ipython(), "compile", None), "format_code_name",
                               None)
    name = format_code_name(file) if format_code_name is not None else None
    return f"{name[0]} {name[1]}" if name else file
