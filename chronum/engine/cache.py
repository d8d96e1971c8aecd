"""Cache keys: everything that can change a step's result, as named parts and one hash.

A step's key is a hash of its parts (part name -> a short text, usually itself a hash):

- ``flow``, ``step``, ``executor``: the flow's and the step's names (a step sees them as
  ``CHRONUM_FLOW`` and ``CHRONUM_STEP``) and the executor;
- ``definition``: the ``run:`` text and the shell; the bytes of a python ``run:`` script; the
  source of a ``call:`` function (for a notebook function, the cell that defined it last);
  executor options (a docker image, say);
- ``env:NAME`` (the flow's and the step's ``env``), ``param:NAME``, ``secret:NAME`` (the name
  only: a secret's value never enters a key), ``cwd``;
- ``input:PATH``: the content of each file its ``inputs:`` match;
- ``need:NAME``: the key of each step it needs, so a change flows downstream (Merkle);
- ``cacheKey``: the user's own value, for what the key cannot see.

The parts are kept per step in the store, so "what changed" is said by comparing them with the
parts of an earlier run (``why_changed``). Input files are hashed once per (path, size,
mtime_ns, inode) through an ``InputMemo`` the session backs with the store, as git's index
remembers what it hashed: a large input is not read again while it is unchanged.

This module reads files but no database; which step is reused is ``engine.plan``'s decision.
"""

from __future__ import annotations

import glob
import hashlib
import inspect
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .. import dag
from ..errors import Location, Problem, SpecError
from ..executors.python import _CallError, _import_target
from ..model import Flow, Step

__all__ = ["UNSEEN", "InputMemo", "StepKey", "cache_enabled", "caching_in_play", "file_digest",
           "input_files", "input_warnings", "output_digests", "output_warnings", "step_keys",
           "why_changed"]

#: Options of a step that do not change its result: how a value is kept, what may outlive it.
_NOT_IN_KEY = frozenset({"persist", "detach"})
#: The ``definition`` of a ``call:`` step whose function is not defined in this process (a
#: notebook function, resumed from a terminal): a change to it cannot be told.
UNSEEN = "?"
#: Part values longer than this are stored as their hash (a param holding a long text).
_SHORT = 60


class InputMemo(Protocol):
    """Remembered hashes of files, by path and what ``stat`` says of them."""

    def get(self, path: str, size: int, mtime_ns: int, inode: int) -> str | None: ...

    def put(self, path: str, size: int, mtime_ns: int, inode: int, digest: str) -> None: ...


class _NoMemo:
    def get(self, path: str, size: int, mtime_ns: int, inode: int) -> str | None:
        return None

    def put(self, path: str, size: int, mtime_ns: int, inode: int, digest: str) -> None:
        return None


@dataclass(frozen=True, slots=True)
class StepKey:
    """A step's key and the parts it was made of."""

    key: str
    parts: Mapping[str, str]


def _hash(*texts: str | bytes) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def _short(value: str) -> str:
    return value if len(value) <= _SHORT and "\n" not in value else "#" + _hash(value)[:16]


def cache_enabled(flow: Flow, step: Step, run_cache: bool | None = None) -> bool:
    """Whether ``step`` may be reused: its own ``cache:``, else the run's option (``--cache``,
    ``Flow(cache=True)``), else the flow's ``cache:``. ``run_cache=False`` (``--no-cache``)
    turns every step off."""
    if run_cache is False:
        return False
    if step.cache is not None:
        return step.cache
    return bool(run_cache) or flow.cache


def caching_in_play(flow: Flow, run_cache: bool | None = None) -> bool:
    """Whether a run of ``flow`` deals with the cache at all (keys, reasons, kept values)."""
    return run_cache is not None or flow.cache or any(
        s.cache or s.inputs or s.output_files or s.cache_key for s in flow.steps)


# -- files ------------------------------------------------------------------------------------


def file_digest(path: Path, memo: InputMemo | None = None) -> str:
    """The content hash of a file, from ``memo`` when its (path, size, mtime_ns, inode) were
    hashed before."""
    memo = memo or _NoMemo()
    st = path.stat()
    key = str(path.resolve())
    known = memo.get(key, st.st_size, st.st_mtime_ns, st.st_ino)
    if known is not None:
        return known
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()[:32]
    memo.put(key, st.st_size, st.st_mtime_ns, st.st_ino, digest)
    return digest


def _shown(path: Path, base: Path) -> str:
    """A path as the user wrote it: relative to the flow's folder when it is inside it."""
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def _expand(base: Path, pattern: str) -> list[Path]:
    full = Path(os.path.expanduser(pattern))
    if not full.is_absolute():
        full = base / full
    if glob.has_magic(str(full)):
        found = [Path(p) for p in glob.glob(str(full), recursive=True)]
    else:
        found = [full] if full.exists() else []
    files: list[Path] = []
    for path in found:
        if path.is_dir():
            files.extend(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            files.append(path)
    return sorted(set(files))


def _problem(flow: Flow, step: Step, key: str, message: str, hint: str = "") -> Problem:
    loc = step.location or Location(flow.source or "<flow>")
    path = f"{loc.path}.{key}" if loc.path else key
    return Problem(Location(loc.file, loc.line, loc.col, path), message, hint)


def _made_upstream(flow: Flow, step: Step, pattern: str) -> bool:
    """Whether a step upstream of ``step`` declares an output ``pattern`` matches: an input
    that is made in the run, not there yet when the run is planned."""
    import fnmatch

    upstream = dag.upstream(flow, step.name)
    return any(fnmatch.fnmatch(output, pattern) or output == pattern
               for s in flow.steps if s.name in upstream for output in s.output_files)


def input_files(flow: Flow, step: Step, *, made: bool = False) -> list[tuple[str, Path]]:
    """The files ``step``'s ``inputs:`` match, as (shown name, path); a pattern that matches
    nothing is a located SpecError, unless ``made`` and a step upstream declares it as an
    output (then it is left out: the key is made again once the run made it)."""
    if not step.inputs:
        return []
    base = Path(flow.base_dir)
    out: dict[str, Path] = {}
    problems = []
    for pattern in step.inputs:
        files = _expand(base, pattern)
        if not files and made and _made_upstream(flow, step, pattern):
            continue
        if not files:
            problems.append(_problem(flow, step, "inputs", f"input {pattern} matched no file",
                                     "create it, fix the path (relative to the flow's "
                                     "folder), or remove it from 'inputs'"))
        for path in files:
            out.setdefault(_shown(path, base), path)
    if problems:
        raise SpecError(problems)
    return sorted(out.items())


def input_warnings(flow: Flow) -> list[str]:
    """``chronum validate``: inputs that match no file now (an error once the step runs)."""
    warnings: list[str] = []
    for step in flow.steps:
        try:
            input_files(flow, step, made=True)
        except SpecError as exc:
            warnings.extend(str(p) for p in exc.problems)
    return warnings


def output_warnings(flow: Flow) -> list[str]:
    """``chronum validate``: declared outputs outside the flow's folder (allowed, but shown)."""
    base = Path(flow.base_dir).resolve()
    warnings: list[str] = []
    for step in flow.steps:
        for name in step.output_files:
            path = Path(os.path.expanduser(name))
            path = (path if path.is_absolute() else base / path).resolve()
            if not path.is_relative_to(base):
                warnings.append(str(_problem(
                    flow, step, "outputs", f"output {name} is outside the flow's folder",
                    "allowed; a cached step is reused only while it is there, unchanged")))
    return warnings


def output_digests(flow: Flow, step: Step, memo: InputMemo | None = None
                   ) -> dict[str, str | None]:
    """Each declared output file of ``step`` (globs expanded) -> its content hash, or None
    for a name that matches no file."""
    base = Path(flow.base_dir)
    out: dict[str, str | None] = {}
    for pattern in step.output_files:
        files = _expand(base, pattern)
        if not files:
            out[pattern] = None
        for path in files:
            try:
                out[_shown(path, base)] = file_digest(path, memo)
            except OSError:
                out[_shown(path, base)] = None
    return out


# -- keys --------------------------------------------------------------------------------------


Functions = Mapping[str, Callable[..., Any]]


def _source(func: Any) -> str:
    """A function's source; its code (without file names and line numbers) when the source
    cannot be found."""
    func = inspect.unwrap(func)
    try:
        return inspect.getsource(func)
    except (OSError, TypeError):
        pass
    code = getattr(func, "__code__", None)
    if code is None:
        return repr(func)
    import marshal

    return marshal.dumps(code.replace(co_filename="", co_firstlineno=1)).hex()


class _Definitions:
    """The ``definition`` part of each step, with functions' sources looked up once."""

    def __init__(self, flow: Flow, functions: Functions | None,
                 namespace: Mapping[str, Any] | None) -> None:
        self.flow = flow
        self.functions = functions or {}
        self.namespace = namespace
        self._sources: dict[int, str] = {}
        self._targets: dict[str, str] = {}
        self._hashes: dict[str, str] = {}

    def function(self, step: Step) -> str:
        func = self.functions.get(step.name)
        call = step.call or ""
        if func is None and ":" in call:  # one import per target, not per step
            known = self._targets.get(call)
            if known is None:
                known = self._targets[call] = self._imported(call)
            return known
        elif func is None and self.namespace is not None:
            func = self.namespace.get(call)
        return self._of(call, func)

    def _imported(self, call: str) -> str:
        try:
            func = _import_target(call, self.flow.base_dir)
        except _CallError:
            return UNSEEN + call
        return self._of(call, func)

    def _of(self, call: str, func: Any) -> str:
        if func is None:  # not defined here: what it is cannot be told (``UNSEEN``)
            return UNSEEN + call
        known = self._sources.get(id(func))
        if known is None:
            known = self._sources[id(func)] = _hash(_source(func))
        return f"call {call} {known}"

    def script(self, step: Step) -> str:
        import shlex

        run = step.run or ""
        try:
            first = shlex.split(run)[0]
        except (ValueError, IndexError):
            return run
        path = Path(self.flow.base_dir) / first
        try:
            return f"{run}\0{file_digest(path)}"
        except OSError:
            return run

    def __call__(self, step: Step) -> str:
        if step.call:
            what = self.function(step)
            if what.startswith(UNSEEN):
                return what
        elif step.executor in ("python", "dask") and step.run:
            what = self.script(step)
        else:
            what = f"{step.shell or ''}\0{step.run or ''}"
        options = {k: v for k, v in step.options.items() if k not in _NOT_IN_KEY}
        if options:
            what += "\0" + json.dumps(options, sort_keys=True, default=repr)
        known = self._hashes.get(what)  # many steps of one flow share a definition
        if known is None:
            known = self._hashes[what] = _hash(what)
        return known


def _needs_first(flow: Flow, by_name: Mapping[str, Step]) -> list[str]:
    """Step names, each after the steps it needs, otherwise in file order. The flow was
    validated as a DAG, so a depth-first walk is enough (``dag.order`` also finds cycles)."""
    done: set[str] = set()
    out: list[str] = []
    for step in flow.steps:
        if step.name in done:
            continue
        stack = [(step.name, iter(step.needs))]
        while stack:
            name, needs = stack[-1]
            for need in needs:
                if need not in done and need in by_name:
                    stack.append((need, iter(by_name[need].needs)))
                    break
            else:
                stack.pop()
                if name not in done:
                    done.add(name)
                    out.append(name)
    return out


def step_keys(flow: Flow, *, functions: Functions | None = None,
              namespace: Mapping[str, Any] | None = None, memo: InputMemo | None = None,
              steps: Iterable[str] | None = None) -> dict[str, StepKey]:
    """The key of every step of ``flow`` (or of ``steps`` and what they need), needs first.

    An input pattern that matches no file raises SpecError, located at the step."""
    definitions = _Definitions(flow, functions, namespace)
    wanted: set[str] | None = None
    if steps is not None:
        wanted = set()
        for name in steps:
            wanted |= {name, *dag.upstream(flow, name)}
    keys: dict[str, StepKey] = {}
    base = {"flow": flow.name}
    for name, value in flow.params.items():
        base[f"param:{name}"] = _short(value)
    for name in flow.secrets:
        base[f"secret:{name}"] = ""
    by_name = {s.name: s for s in flow.steps}
    for name in _needs_first(flow, by_name):
        if wanted is not None and name not in wanted:
            continue
        step = by_name[name]
        parts = dict(base)
        parts["step"] = name  # steps see it as CHRONUM_STEP
        parts["executor"] = step.executor
        parts["definition"] = definitions(step)
        for env_name, value in {**flow.env, **step.env}.items():
            parts[f"env:{env_name}"] = _hash(value)[:16]
        for secret in step.secrets:
            parts[f"secret:{secret}"] = ""
        if step.cwd:
            parts["cwd"] = step.cwd
        if step.cache_key is not None:
            parts["cacheKey"] = _short(step.cache_key)
        for shown, path in input_files(flow, step, made=True):
            parts[f"input:{shown}"] = file_digest(path, memo)
        for need in step.needs:
            parts[f"need:{need}"] = keys[need].key
        keys[name] = StepKey(_hash(*(f"{k}={v}" for k, v in sorted(parts.items()))), parts)
    return keys


def why_changed(now: Mapping[str, str], before: Mapping[str, str], ran: Iterable[str] = ()
                ) -> str | None:
    """One short phrase for what differs between two sets of parts, the step's own changes
    first, then its needs; None when they are the same. ``ran`` are needs that run in this
    run."""
    if now == before:
        return None
    ran = set(ran)
    if now.get("definition") != before.get("definition") or \
            now.get("executor") != before.get("executor"):
        return "definition changed"
    if now.get("cacheKey") != before.get("cacheKey"):
        return (f"cacheKey changed ({before.get('cacheKey', '(none)')} → "
                f"{now.get('cacheKey', '(none)')})")
    for prefix, what in (("input:", "input"), ("param:", "param"), ("env:", "env"),
                         ("secret:", "secret")):
        names = sorted({k for k in (*now, *before) if k.startswith(prefix)})
        for key in names:
            old, new = before.get(key), now.get(key)
            if old == new:
                continue
            name = key[len(prefix):]
            if prefix == "input:":
                return f"input {name} {'changed' if old and new else 'added' if new else 'gone'}"
            if prefix == "param:" and old is not None and new is not None:
                return f"param {name} changed ({old} → {new})"
            return f"{what} {name} {'changed' if old and new else 'added' if new else 'removed'}"
    if now.get("cwd") != before.get("cwd"):
        return "cwd changed"
    for need in sorted(k[5:] for k in now if k.startswith("need:")):
        if need in ran:
            return f"upstream {need} ran"
    for key in sorted({k for k in (*now, *before) if k.startswith("need:")}):
        if now.get(key) != before.get(key):
            return f"upstream {key[5:]} changed"
    return "definition changed"
