"""The ``.py`` flow format: ``chronum run pipeline.py`` runs the ``chronum.Flow`` it defines.

The file is executed as a module named after it (``pipeline``), registered in ``sys.modules``
and with its folder on ``sys.path``, as ``python pipeline.py`` would import its neighbours; so
its functions are ``pipeline:load`` to other processes too. ``if __name__ == "__main__":``
blocks do not run. The file must define exactly one ``chronum.Flow`` at module level.
"""

from __future__ import annotations

import os
import sys
import traceback
import types
from pathlib import Path

from ..errors import ChronumError, SpecError
from ..model import Flow as FlowModel
from . import _registry
from ._flow import Flow

__all__ = ["PythonParser", "parse", "parser"]


def _module_name(file: str) -> str:
    stem = Path(file).stem
    name = stem if stem.isidentifier() else "_chronum_flow_" + "".join(
        c if c.isalnum() else "_" for c in stem)
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "__file__", None) != os.path.abspath(file):
        name = "_chronum_flow_" + name  # never shadow an installed module
    return name


def _execute(text: str, file: str) -> types.ModuleType:
    path = os.path.abspath(file)
    try:
        code = compile(text, file, "exec")
    except SyntaxError as exc:
        raise SpecError.single(file, f"invalid Python: {exc.msg}", line=exc.lineno or 0,
                               col=exc.offset or 0) from None
    module = types.ModuleType(_module_name(file))
    module.__file__ = path
    folder = str(Path(path).parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[module.__name__] = module
    _registry.LOADING.append(file)
    try:
        exec(code, module.__dict__)
    except ChronumError:
        raise
    except (Exception, SystemExit) as exc:
        # SystemExit too: a flow file calling sys.exit() while loading must not end
        # ``chronum validate`` (or a notebook's kernel) with that code and no word.
        sys.modules.pop(module.__name__, None)
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == file]
        line = frames[-1].lineno or 0 if frames else 0
        if isinstance(exc, SystemExit):
            status = "" if exc.code is None else repr(exc.code)
            raise SpecError.single(
                file, f"the file raised SystemExit({status}) while loading",
                'keep sys.exit() under `if __name__ == "__main__":`', line=line) from None
        raise SpecError.single(file, f"the file raised {type(exc).__name__}: {exc}",
                               line=line) from exc
    finally:
        _registry.LOADING.pop()
    return module


def parse(text: str, file: str) -> FlowModel:
    """The parser registered for ``.py``: the model of the one ``chronum.Flow`` in the file."""
    module = _execute(text, file)
    found: dict[int, tuple[str, Flow]] = {}
    for name, value in vars(module).items():
        if isinstance(value, Flow):
            found.setdefault(id(value), (name, value))
    if not found:
        raise SpecError.single(file, "the file defines no chronum.Flow at module level",
                               'add `flow = chronum.Flow("name")` and its steps')
    if len(found) > 1:
        names = ", ".join(f"{var} ({flow.name!r})" for var, flow in found.values())
        raise SpecError.single(file, f"the file defines several flows: {names}",
                               "keep one chronum.Flow per file")
    (_, flow), = found.values()
    model, _ = flow._compile(source=file, base_dir=Path(os.path.abspath(file)).parent)
    return model


class PythonParser:
    """The ``python`` flow format, registered like any plugin parser: through the entry point
    ``chronum.parsers: python`` in Chronum's own package metadata."""

    extensions = (".py",)

    def __call__(self, text: str, file: str) -> FlowModel:
        return parse(text, file)


parser = PythonParser()
