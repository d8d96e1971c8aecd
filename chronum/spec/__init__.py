"""Loading flow files: a parser registry in front of one validator.

A parser turns text into a raw document (or a finished Flow); the validator turns the document
into a ``chronum.model.Flow`` or raises ``SpecError`` with every problem in the file, each as
``file:line:col: path: message (hint)``. Limits (10 MB per file, nesting depth, alias
expansion) are checked before the expensive work, so a hostile file costs little.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ChronumError, Problem, SpecError
from ..model import Flow
from ._build import apply_params, build
from ._registry import ENTRY_POINT_GROUP, Parser, ParserRegistry, default_parsers

if TYPE_CHECKING:
    from ..executors import ExecutorRegistry

__all__ = [
    "ENTRY_POINT_GROUP",
    "MAX_BYTES",
    "Parser",
    "ParserRegistry",
    "check_calls",
    "default_parsers",
    "load",
    "loads",
    "register_parser",
    "schema_path",
]

#: Largest flow file accepted; a flow is a few kilobytes, so this is only a guard.
MAX_BYTES = 10 * 1024 * 1024


def register_parser(fmt: str, parser: Parser, *, extensions: tuple[str, ...] = ()) -> None:
    """Register a flow format for this process (``extensions`` like ``(".toml",)``)."""
    default_parsers.register(fmt, parser, extensions=extensions)


def check_calls(flow: Flow, namespace: Mapping[str, Any] | None = None, *,
                text: str | None = None) -> list[Problem]:
    """The problems of the flow's ``call:`` steps, found before a run: a function that
    cannot be found (a ``module:function`` is imported; a bare name is looked up in
    ``namespace``), a parameter no step in ``needs`` feeds. ``text``, the flow's source,
    points each problem at its ``call:`` line."""
    from ._calls import check_calls as check  # imports the executors: only when asked

    return check(flow, namespace, text=text)


def schema_path() -> Path:
    """The JSON Schema of the flow format (draft 2020-12), for editors and validators."""
    return Path(__file__).with_name("flow.schema.json")


def load(path: str | os.PathLike[str], *, params: Mapping[str, str] | None = None,
         parsers: ParserRegistry | None = None, executors: ExecutorRegistry | None = None,
         default_name: str | None = None) -> Flow:
    """Read and validate a flow file; relative paths in it resolve against its folder.

    A YAML or JSON file already loaded with the same bytes, at the same path, comes from the
    flow cache (see ``chronum.spec._cache``) without being parsed again.
    """
    file = os.fspath(path)
    registry = parsers or default_parsers
    fmt = registry.format_for(file)
    if os.path.isdir(file):
        raise _a_folder(file, registry)
    if fmt is None:
        suffix = Path(file).suffix
        raise SpecError.single(
            file, f"no parser for {suffix!r} files" if suffix else "no parser for a file "
            "without an extension",
            f"known extensions: {', '.join(registry.extensions())}",
        )
    data = _read(file)
    if executors is None:
        from ..executors import default_registry

        executors = default_registry
    from . import _cache

    cache = _cache.slot(file, fmt, data, default_name, registry)
    if cache is not None:
        cached = cache.get(executors)
        if cached is not None:
            try:
                return apply_params(cached, params, file)
            except SpecError:  # an unknown param: the full load below reports it at its line
                cache = None
    text = _decode(data, file)
    doc = _parse(text, file, fmt, registry)
    if isinstance(doc, Flow):
        return apply_params(doc, params, file)
    flow = build(doc, file=file, base_dir=Path(os.path.abspath(file)).parent, source=file,
                 executors=executors, default_name=default_name)
    if cache is not None:
        cache.put(flow, executors)
    # as build(..., params=params) does: the doc gives an unknown param's line
    return apply_params(flow, params, file, doc)


def loads(text: str | bytes, *, filename: str = "<string>", fmt: str = "yaml",
          base_dir: str | os.PathLike[str] | None = None,
          params: Mapping[str, str] | None = None, parsers: ParserRegistry | None = None,
          executors: ExecutorRegistry | None = None, default_name: str | None = None) -> Flow:
    """Validate a flow given as text; ``filename`` only names it in error messages."""
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise _too_big(filename, len(text))
        text = _decode(text, filename)
    elif len(text) > MAX_BYTES // 4 and len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise _too_big(filename, None)
    source = None if filename == "<string>" else filename
    folder = Path(base_dir) if base_dir is not None else Path.cwd()
    return _load(text, filename, fmt, folder, source, params, parsers or default_parsers,
                 executors, default_name)


def _load(text: str, file: str, fmt: str, base_dir: Path, source: str | None,
          params: Mapping[str, str] | None, registry: ParserRegistry,
          executors: ExecutorRegistry | None, default_name: str | None) -> Flow:
    doc = _parse(text, file, fmt, registry)
    if isinstance(doc, Flow):
        return apply_params(doc, params, file)
    if executors is None:
        from ..executors import default_registry

        executors = default_registry
    return build(doc, file=file, base_dir=base_dir, source=source, executors=executors,
                 params=params, default_name=default_name)


def _parse(text: str, file: str, fmt: str, registry: ParserRegistry) -> Any:
    """The parser's raw document, or a finished Flow."""
    parser = registry.parser(fmt)
    if parser is None:
        broken = "; ".join(f"{k} ({v})" for k, v in registry.broken.items())
        raise SpecError.single(file, f"unknown flow format {fmt!r}",
                               f"installed formats: {', '.join(registry.formats())}"
                               + (f"; failed to load: {broken}" if broken else ""))
    try:
        return parser(text, file)
    except ChronumError:
        raise
    except Exception as exc:  # a plugin's own error becomes a message, not a traceback
        raise SpecError.single(file, f"the {fmt} parser failed: {exc}") from exc


def _a_folder(file: str, registry: ParserRegistry) -> SpecError:
    """``chronum run flows/``: name the flow files the folder holds, so the fix is a copy."""
    try:
        found = sorted(p.name for p in Path(file).iterdir()
                       if p.is_file() and registry.format_for(str(p)) is not None)[:3]
    except OSError:  # an unreadable folder: the error is still that it is a folder
        found = []
    hint = (f"name a flow file in it: {', '.join(os.path.join(file, n) for n in found)}"
            if found else f"give the path of a flow file ({', '.join(registry.extensions())})")
    return SpecError.single(file, "is a folder, not a flow file", hint)


def _too_big(file: str, size: int | None) -> SpecError:
    mb = 2**20
    what = f"is {size / mb:.1f} MB" if size else "is larger than that"
    return SpecError.single(file, f"the flow file {what}; flows are limited to "
                            f"{MAX_BYTES // mb} MB", "split it into smaller flows")


def _read(file: str) -> bytes:
    try:
        with open(file, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_BYTES:
                raise _too_big(file, size)
            data = fh.read(MAX_BYTES + 1)  # also bounds files that lie about their size
    except OSError as exc:
        raise SpecError.single(file, f"cannot read the flow file: {exc.strerror or exc}"
                               ) from None
    if len(data) > MAX_BYTES:
        raise _too_big(file, None)
    return data


def _decode(data: bytes, file: str) -> str:
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        col = len(data[start:exc.start].decode("utf-8", "replace")) + 1
        raise SpecError.single(file, f"the file is not UTF-8 text: byte "
                               f"0x{data[exc.start]:02x} cannot be decoded",
                               "save it as UTF-8", line=line, col=col) from None
