"""Where a notebook cell's code is, said as IPython says it: ``Cell In[5]``.

IPython compiles each cell from a temporary file (``/tmp/ipykernel_123/4567.py``); a flow
defined in a cell would otherwise name that path in its errors, which the user never saw.
IPython's own compiler knows which cell each such file was, and tracebacks use its name.
"""

from __future__ import annotations

import re
import sys

__all__ = ["cell_name", "cellify_traceback"]

_FILE_LINE = re.compile(r'^(\s*)File "([^"]+)", line (\d+)')


def cell_name(file: str) -> str:
    """``Cell In[n]`` for the file of a notebook cell of the running IPython, else ``file``."""
    if "IPython" not in sys.modules:
        return file
    from IPython import get_ipython

    format_code_name = getattr(getattr(get_ipython(), "compile", None), "format_code_name",
                               None)
    name = format_code_name(file) if format_code_name is not None else None
    return f"{name[0]} {name[1]}" if name else file


def cellify_traceback(lines: list[str]) -> list[str]:
    """A traceback's ``File "/tmp/ipykernel_1/2.py", line 3`` lines as ``Cell In[5], line
    3``, as IPython shows its own."""
    out = []
    for line in lines:
        match = _FILE_LINE.match(line)
        if match is not None:
            name = cell_name(match[2])
            if name != match[2]:
                line = f"{match[1]}{name}, line {match[3]}{line[match.end():]}"
        out.append(line)
    return out
