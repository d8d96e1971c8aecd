"""A cache of validated flows, so loading an unchanged YAML/JSON file again skips PyYAML.

Like Python's ``.pyc`` files: the first ``load`` of a file parses and validates it and writes
the resulting ``Flow`` (built without ``-p`` params, which are applied on every load) to
``<cache>/flows/<key>.pickle``; the next ``load`` of the same bytes at the same path reads it
back without importing ``yaml``. ``<cache>`` is ``$CHRONUM_CACHE_DIR``, else
``$XDG_CACHE_HOME/chronum``, else ``~/.cache/chronum``; ``CHRONUM_FLOW_CACHE=0`` turns the
cache off.

The key is a hash of everything the result depends on: this cache's format version, the code
that builds flows (Chronum's version, the Python version, and size and mtime of the modules of
``chronum.spec``, ``chronum.executors``, ``model``, ``errors``, ``dag`` and of PyYAML, so an
editable install never serves a flow its edited code would not build), the format, the path as
given and as an absolute path (``source``, locations and ``base_dir`` come from them), the
default name and the file's bytes. Only flows whose result is fully decided by that key are
cached: the format's parser is the built-in YAML one (a registered or plugin parser may do
anything; the ``.py`` parser runs user code) and every step's executor is a built-in that
``register()`` did not replace (an executor's ``step_keys`` take part in validation). Files
with problems are never cached, so every load reports them again.

Why pickle: the model is frozen dataclasses with ``MappingProxyType`` fields and, in executor
options, the parser's positioned ``YMap``/``YList`` containers; pickle writes and reads them as
they are, in C (the model's classes as constructor calls, see ``_reducers``), so a hit skips
parsing and validating (``benchmarks/`` measures by how much). JSON or marshal would need a
converter for every model class, kept in step with the model by hand.
Pickle's danger, running code named in the file, is closed three ways: an entry is read only
from a folder and a file owned by the current user that no one else can write; the unpickler
resolves only the model's classes (anything else is refused); and the entry repeats its key,
so a file renamed or copied to another key is not used. ``MappingProxyType`` is not picklable,
so it is written through ``_proxy``.

Every failure (a read-only or full disk, a corrupt or foreign entry) means the cache is
skipped silently and the flow is loaded normally. The folder is kept small: a write that finds
more than ``MAX_ENTRIES`` entries deletes the least recently used down to ``KEEP_ENTRIES``
(a hit refreshes an entry's mtime).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from operator import attrgetter
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..model import Backoff, Flow, RetryPolicy, Step
from ._registry import ParserRegistry

if TYPE_CHECKING:
    from ..executors import ExecutorRegistry

logger = logging.getLogger("chronum")

__all__ = ["KEEP_ENTRIES", "MAX_ENTRIES", "VERSION", "FlowCache", "cache_dir", "slot"]

#: Bump when the layout of an entry changes.
VERSION = 1
#: Entries kept in ``flows/``: a write above ``MAX_ENTRIES`` prunes down to ``KEEP_ENTRIES``.
MAX_ENTRIES = 500
KEEP_ENTRIES = 250

_SUFFIX = ".pickle"
_MAGIC = "chronum-flow"
#: What an entry may name: the model, and the containers its fields hold.
_ALLOWED = {
    ("chronum.model", "Flow"), ("chronum.model", "Step"), ("chronum.model", "RetryPolicy"),
    ("chronum.model", "Backoff"), ("chronum.errors", "Location"),
    ("chronum.conditions", "Condition"),
    ("chronum.spec._nodes", "YMap"), ("chronum.spec._nodes", "YList"),
    ("chronum.spec._cache", "_proxy"), ("pathlib", "PosixPath"), ("pathlib", "WindowsPath"),
}
_fingerprint: bytes | None = None


def _proxy(items: dict[str, Any]) -> Mapping[str, Any]:
    """Rebuilds a ``MappingProxyType`` when an entry is read."""
    return MappingProxyType(items)


def cache_dir(environ: Mapping[str, str] = os.environ) -> str | None:
    """The folder of Chronum's caches, or None when the flow cache is turned off."""
    if environ.get("CHRONUM_FLOW_CACHE", "").strip().lower() in ("0", "false", "no", "off"):
        return None
    folder = environ.get("CHRONUM_CACHE_DIR")
    if folder:
        return os.path.abspath(folder)
    xdg = environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec says to ignore relative paths
        return os.path.join(xdg, "chronum")
    home = os.path.expanduser("~")
    return None if home == "~" else os.path.join(home, ".cache", "chronum")


def _code_fingerprint() -> bytes:
    """What identifies the code that turns a file into a Flow; computed once per process."""
    global _fingerprint
    if _fingerprint is None:
        import importlib.util

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        parts = [f"{VERSION} {__version__} {sys.version} {sys.implementation.cache_tag}"]
        for folder in ("spec", "executors"):
            with os.scandir(os.path.join(root, folder)) as entries:
                files = sorted(e.path for e in entries if e.name.endswith(".py"))
            parts.extend(_stamp(f) for f in files)
        parts.extend(_stamp(os.path.join(root, f)) for f in ("model.py", "errors.py", "dag.py",
                                                             "conditions.py"))
        yaml = importlib.util.find_spec("yaml")  # finds PyYAML without importing it
        parts.append(_stamp(yaml.origin) if yaml and yaml.origin else "no yaml")
        _fingerprint = "\n".join(parts).encode("utf-8", "surrogateescape")
    return _fingerprint


def _stamp(path: str) -> str:
    st = os.stat(path)
    return f"{path} {st.st_size} {st.st_mtime_ns}"


def _key(fields: Iterable[bytes]) -> str:
    from hashlib import blake2b

    h = blake2b(digest_size=20)
    for field in fields:  # length-prefixed, so no two field lists hash the same bytes
        h.update(len(field).to_bytes(8, "little"))
        h.update(field)
    return h.hexdigest()


def _private(st: os.stat_result) -> bool:
    """Owned by this user and writable by no one else: safe to unpickle from."""
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


_unpickler: type[Any] | None = None


def _load(data: bytes) -> Any:
    """Unpickles an entry, resolving only the classes in ``_ALLOWED``."""
    global _unpickler
    if _unpickler is None:
        import pickle

        class Restricted(pickle.Unpickler):
            def find_class(self, module: str, name: str) -> Any:
                if (module, name) not in _ALLOWED:
                    raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a flow")
                return super().find_class(module, name)

        _unpickler = Restricted
    return _unpickler(io.BytesIO(data)).load()


def _dump(value: Any) -> bytes:
    import pickle

    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _reducers()
    pickler.dump(value)
    return buffer.getvalue()


def _reducers() -> dict[type, Callable[[Any], Any]]:
    """``MappingProxyType`` through ``_proxy``; the model's classes as constructor calls.

    A frozen dataclass pickles by default through ``__setstate__``, which walks
    ``dataclasses.fields`` per object: twice as slow to read as calling the constructor with
    the fields in order (what ``__init__`` takes, as no field is keyword-only or init=False).
    """
    import copyreg

    table: dict[type, Callable[[Any], Any]] = {
        **copyreg.dispatch_table, MappingProxyType: lambda m: (_proxy, (dict(m),))}
    for cls in (Flow, Step, RetryPolicy, Backoff):  # Location, a NamedTuple, already is one
        fields = dataclasses.fields(cls)
        if len(fields) > 1 and all(f.init and not f.kw_only for f in fields):
            table[cls] = partial(_by_fields, cls, attrgetter(*(f.name for f in fields)))
    return table


def _by_fields(cls: type, fields: Callable[[Any], tuple[Any, ...]], obj: Any
               ) -> tuple[Any, ...]:
    return cls, fields(obj)


def _builtin_executors(flow: Flow, executors: ExecutorRegistry) -> bool:
    return all(executors.is_builtin(name) for name in {s.executor for s in flow.steps})


class FlowCache:
    """The cache entry of one file's bytes: ``get`` it, or ``put`` the flow built from them."""

    def __init__(self, folder: str, key: str) -> None:
        self.folder = folder
        self.key = key
        self.path = os.path.join(folder, key + _SUFFIX)

    def get(self, executors: ExecutorRegistry) -> Flow | None:
        """The cached flow, or None on a miss or for anything not quite right."""
        try:
            with open(self.path, "rb") as fh:
                if not (_private(os.fstat(fh.fileno())) and _private(os.stat(self.folder))):
                    logger.warning("the flow cache entry %s can be written by other users; "
                                   "it is not used (make %s private: chmod 700)",
                                   self.path, self.folder)
                    return None
                data = fh.read()
        except OSError:
            return None
        try:
            magic, version, key, flow = _load(data)
        except Exception as exc:  # a corrupt entry raises nearly anything: it is just a miss
            logger.debug("flow cache entry %s could not be read: %s", self.path, exc)
            return None
        if (magic, version, key) != (_MAGIC, VERSION, self.key) or not isinstance(flow, Flow):
            return None
        if not _builtin_executors(flow, executors):
            return None
        with contextlib.suppress(OSError):  # a read-only cache is still read
            os.utime(self.path)  # mtime is the last use, for pruning
        return flow

    def put(self, flow: Flow, executors: ExecutorRegistry) -> None:
        """Write the entry atomically; silently nothing when that is not possible."""
        if not _builtin_executors(flow, executors):
            return
        try:
            data = _dump((_MAGIC, VERSION, self.key, flow))
        except Exception:  # an option value pickle cannot write: do not cache this flow
            return
        tmp = os.path.join(self.folder, f".{self.key}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            os.makedirs(os.path.dirname(self.folder), mode=0o700, exist_ok=True)
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            if not _private(os.stat(self.folder)):
                return
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with open(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, self.path)
            except BaseException:
                _unlink(tmp)
                raise
            self._prune()
        except OSError as exc:
            logger.debug("flow cache entry %s could not be written: %s", self.path, exc)

    def _prune(self) -> None:
        with os.scandir(self.folder) as it:
            entries = [e for e in it if e.is_file(follow_symlinks=False)]
        if len(entries) <= MAX_ENTRIES:
            return
        by_age = sorted(entries, key=lambda e: e.stat(follow_symlinks=False).st_mtime_ns)
        for entry in by_age[:len(entries) - KEEP_ENTRIES]:
            _unlink(entry.path)


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def slot(file: str, fmt: str, data: bytes, default_name: str | None,
         parsers: ParserRegistry) -> FlowCache | None:
    """The cache entry for these bytes, or None when this load must not use the cache."""
    if not hasattr(os, "geteuid"):  # no owner check without it: no cache
        return None
    # Only Chronum's own YAML/JSON parser: a registered parser may do anything, and the
    # built-in ``.py`` parser runs user code.
    if fmt not in ("yaml", "json") or not parsers.is_builtin(fmt):
        return None
    root = cache_dir()
    if root is None:
        return None
    try:
        fingerprint = _code_fingerprint()
    except OSError:
        return None
    abspath = os.path.abspath(file)
    key = _key((fingerprint, fmt.encode(), os.fsencode(file), os.fsencode(abspath),
                b"\0" if default_name is None else b"=" + default_name.encode(
                    "utf-8", "surrogatepass"), data))
    return FlowCache(os.path.join(root, "flows"), key)
