"""Flow formats by name and by file extension.

YAML and JSON are built in; other formats come from ``chronum.register_parser`` or the
``chronum.parsers`` entry point group — Python flow files too: ``chronum.sdk`` registers its
``.py`` parser through Chronum's own entry point, as a plugin would. Entry points are read only
when a file extension or a format is not already known, so loading a ``.yaml`` flow never scans
installed packages.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from pathlib import PurePath
from typing import Any

__all__ = ["ENTRY_POINT_GROUP", "Parser", "ParserRegistry", "default_parsers"]

ENTRY_POINT_GROUP = "chronum.parsers"

#: ``parser(text, filename)`` returns a ``chronum.model.Flow`` (used as is) or a raw document:
#: the YAML parser's positioned tree, or plain dicts and lists.
Parser = Callable[[str, str], Any]

_YAML = "chronum.spec._yaml:parse"
#: Built-in formats: parser as ``module:attribute`` (imported on first use), and extensions.
BUILTINS: dict[str, tuple[str, tuple[str, ...]]] = {
    "yaml": (_YAML, (".yaml", ".yml")),
    "json": (_YAML, (".json",)),  # JSON is YAML, so JSON errors get line numbers too
}


def _ext(extension: str) -> str:
    extension = extension.lower()
    return extension if extension.startswith(".") else "." + extension


class ParserRegistry:
    """Format names to parsers, and file extensions to formats. Pass one to ``load``."""

    def __init__(self, *, builtins: bool = True, entry_points: bool = True) -> None:
        self._targets: dict[str, str] = {}
        self._parsers: dict[str, Parser] = {}
        self._extensions: dict[str, str] = {}
        self._use_entry_points = entry_points
        self._entry_points_loaded = False
        #: Entry points that failed to load, reported when no parser is found.
        self.broken: dict[str, str] = {}
        if builtins:
            for fmt, (target, extensions) in BUILTINS.items():
                self._targets[fmt] = target
                for extension in extensions:
                    self._extensions[extension] = fmt

    def register(self, fmt: str, parser: Parser, *, extensions: Iterable[str] = ()) -> None:
        """Make ``fmt`` available (replacing an earlier one) and claim ``extensions``."""
        self._parsers[fmt] = parser
        self._targets.pop(fmt, None)
        for extension in extensions:
            self._extensions[_ext(extension)] = fmt

    def is_builtin(self, fmt: str) -> bool:
        """Whether ``fmt`` is parsed by Chronum's own YAML/JSON parser (not replaced)."""
        builtin = BUILTINS.get(fmt)
        return builtin is not None and self._targets.get(fmt) == builtin[0]

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded or not self._use_entry_points:
            return
        self._entry_points_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self._parsers or ep.name in self._targets:
                continue
            try:
                parser = ep.load()
            except Exception as exc:  # a broken plugin must not break the other formats
                self.broken[ep.name] = f"{ep.value}: {exc}"
                continue
            extensions = getattr(parser, "extensions", None) or (ep.name,)
            self.register(ep.name, parser, extensions=extensions)

    def formats(self) -> list[str]:
        self._load_entry_points()
        return sorted(set(self._targets) | set(self._parsers))

    def extensions(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._extensions)

    def format_for(self, filename: str) -> str | None:
        """The format a file's extension names, or None."""
        extension = PurePath(filename).suffix.lower()
        if extension not in self._extensions:
            self._load_entry_points()
        return self._extensions.get(extension)

    def parser(self, fmt: str) -> Parser | None:
        """The parser for ``fmt``, or None when no such format is installed."""
        if fmt not in self._parsers and fmt not in self._targets:
            self._load_entry_points()
        if fmt in self._parsers:
            return self._parsers[fmt]
        target = self._targets.get(fmt)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        parser: Parser = getattr(importlib.import_module(module), attr)
        self._parsers[fmt] = parser
        return parser


default_parsers = ParserRegistry()
