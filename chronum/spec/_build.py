"""A raw document (positioned YMap tree, or plain dicts) to a ``chronum.model.Flow``.

Every problem in the document is collected in one pass and raised together as a SpecError, in
file order. Flow-level defaults (``defaultRetry``, ``defaultTimeout``, ``backoff``) are folded
into each Step here, so the engine never has to look them up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from .. import dag
from ..errors import ExecutorError, Location, SpecError
from ..model import Backoff, Flow, RetryPolicy, Step
from . import _fanout
from ._checks import Checker, describe, did_you_mean, field_path
from ._conditions import check_references, condition
from ._nodes import Pos, child_pos, pos_of

__all__ = [
    "BACKOFF_KEYS",
    "DASK_KEYS",
    "FLOW_KEYS",
    "JITTERS",
    "MAX_BACKOFF",
    "MAX_FACTOR",
    "MAX_PARALLEL",
    "MAX_RETRIES",
    "MAX_STEP_NAME",
    "MAX_TIMEOUT",
    "PYTHON_LIKE",
    "RETRY_KEYS",
    "STEP_KEYS",
    "ExecutorNames",
    "apply_params",
    "build",
    "param_variable",
]

FLOW_KEYS = frozenset({"name", "maxParallel", "stopOnFail", "defaultRetry", "defaultTimeout",
                       "backoff", "env", "params", "dask", "secrets", "steps", "cache",
                       "timeout"})
DASK_KEYS = frozenset({"address"})
#: Where the dask executor reads the scheduler address: ``dask: {address: ...}`` lands here.
DASK_ADDRESS_VAR = "CHRONUM_DASK_ADDRESS"
STEP_KEYS = frozenset({"name", "run", "call", "executor", "needs", "retry", "timeout",
                       "continueOnError", "env", "cwd", "shell", "persist", "secrets", "detach",
                       "cache", "cacheKey", "cacheFor", "inputs", "outputs", "isolate",
                       "if"}) | _fanout.FANOUT_KEYS
#: ``detach:``: whether processes that left a step's process group may outlive it.
DETACH = ("allow", "stop")
#: ``isolate:``: where a ``call:`` step's function runs (its own process: cancel stops it).
ISOLATE = ("process", "thread")
RETRY_KEYS = frozenset({"limit", "backoff", "exitCodes", "onTimeout"})
BACKOFF_KEYS = frozenset({"base", "factor", "max", "jitter"})
JITTERS = ("full", "equal", "none")
#: Executors that run Python callables, so ``call:`` makes sense for them.
PYTHON_LIKE = frozenset({"python", "dask"})

_STEP_NAME = re.compile(r"[A-Za-z0-9_.-]+\Z")
_PARAM_CHARS = re.compile(r"[^A-Za-z0-9]")

# Bounds on every number a flow sets: past them a value is a typo or an attack, never a plan
# (a timeout of 1e308 s means none; a step name must still fit in a file name with its suffix).
#: The longest step name: it names the step's log file, and file names stop at 255 bytes.
MAX_STEP_NAME = 100
#: Steps at once (``maxParallel``, ``--max-parallel``).
MAX_PARALLEL = 10_000
#: Retries of one step (``defaultRetry``, ``retry``).
MAX_RETRIES = 1_000
#: Seconds: the longest timeout (30 days) and the longest backoff wait (one day).
MAX_TIMEOUT = 30 * 24 * 3600.0
MAX_BACKOFF = 24 * 3600.0
#: How long a cached result may be reused, at most (``cacheFor``).
MAX_CACHE_FOR = 365 * 24 * 3600.0
#: How much each backoff wait may grow over the one before.
MAX_FACTOR = 100.0
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CALL = re.compile(r"(?:[^\W\d]\w*(?:\.[^\W\d]\w*)*:)?[^\W\d]\w*(?:\.[^\W\d]\w*)*\Z")


class ExecutorNames(Protocol):
    """What validation needs from ``chronum.executors.ExecutorRegistry`` (spec sits below it)."""

    def names(self) -> list[str]: ...
    def __contains__(self, name: object) -> bool: ...
    def step_keys(self, name: str) -> frozenset[str]: ...


class _Defaults(NamedTuple):
    retry: int
    timeout: float | None
    backoff: Backoff


class _Builder(Checker):
    def __init__(self, file: str, executors: ExecutorNames) -> None:
        super().__init__(file)
        self.executors = executors
        self._step_keys: dict[str, frozenset[str] | None] = {}
        self._all_keys: dict[str, frozenset[str]] | None = None
        #: Declared params, for the ``params.NAME`` of ``if:`` conditions.
        self.declared: Mapping[str, str] = {}
        #: ``foreach: {param: NAME}`` of each step, checked once the params are known.
        self._param_refs: list[tuple[_fanout.Fanout, str]] = []

    # -- flow --------------------------------------------------------------------------------

    def flow(self, doc: Any, default_name: str | None) -> Flow | None:
        root: Pos = (0, 0)  # plain dicts from other parsers have no positions
        if doc is None:
            self.add((1, 1), "", "the flow is empty", "a flow needs at least 'name' and 'steps'")
            return None
        if not isinstance(doc, Mapping):
            self.add(pos_of(doc, root), "", f"expected a mapping at the top level, got "
                     f"{describe(doc)}")
            return None
        pos = pos_of(doc, root)
        self.keys(doc, "", pos, FLOW_KEYS)
        get = doc.get
        name = default_name
        if get("name") is not None:
            name = self.text(doc, "name", "", pos)
            if name == "":
                self.at(doc, "name", "", pos, "the flow name is empty")
        elif not default_name:
            self.add(pos, "", "missing required key 'name'")
        max_parallel = 1 if get("maxParallel") is None else self.integer(
            doc, "maxParallel", "", pos, 1, MAX_PARALLEL)
        stop = False if get("stopOnFail") is None else self.boolean(doc, "stopOnFail", "", pos)
        retry = 0 if get("defaultRetry") is None else self.integer(
            doc, "defaultRetry", "", pos, 0, MAX_RETRIES)
        timeout = None if get("defaultTimeout") is None else self.duration(
            doc, "defaultTimeout", "", pos, MAX_TIMEOUT)
        backoff = self.backoff(doc, "backoff", "", pos, Backoff())
        env = {} if get("env") is None else self.str_map(doc, "env", "", pos)
        if env:
            self.env_names(doc, "", pos)
        address = self.dask(doc, pos)
        if address is not None and env is not None:
            env.setdefault(DASK_ADDRESS_VAR, address)  # an explicit env entry wins
        params = {} if get("params") is None else self.str_map(doc, "params", "", pos)
        if params:
            self.param_names(doc, params, pos)
        self.declared = params or {}
        run_timeout = None if get("timeout") is None else self.duration(
            doc, "timeout", "", pos, MAX_TIMEOUT)
        secrets = self.secrets(doc, "", pos)
        defaults = _Defaults(retry or 0, timeout, backoff)
        steps = self.steps(doc, pos, defaults)
        cache = False if get("cache") is None else self.boolean(doc, "cache", "", pos)
        _fanout.check_params(self, self._param_refs, params or {})
        if self.problems or name is None:
            return None
        return Flow(
            name=name, steps=steps, max_parallel=max_parallel or 1, stop_on_fail=bool(stop),
            default_retry=retry or 0, default_timeout=timeout, backoff=backoff,
            env=MappingProxyType(env or {}), params=MappingProxyType(params or {}),
            secrets=secrets, cache=bool(cache), timeout=run_timeout,
        )

    def dask(self, doc: Mapping[Any, Any], pos: Pos) -> str | None:
        """``dask: {address: tcp://host:8786}``: the cluster of the flow's dask steps."""
        if doc.get("dask") is None:
            return None
        m = self.mapping(doc, "dask", "", pos)
        if m is None:
            return None
        dpos = child_pos(doc, "dask", pos)
        self.keys(m, "dask", dpos, DASK_KEYS)
        if m.get("address") is None:
            return None
        address = self.text(m, "address", "dask", dpos)
        if address == "":
            self.at(m, "address", "dask", dpos, "the dask address is empty",
                    "give the scheduler's address, e.g. tcp://127.0.0.1:8786")
            return None
        return address

    def backoff(self, c: Any, key: str, prefix: str, fb: Pos, base: Backoff) -> Backoff:
        """``base`` with the keys given in ``c[key]`` laid over it."""
        if c.get(key) is None:
            return base
        m = self.mapping(c, key, prefix, fb)
        if m is None:
            return base
        path, pos = f"{prefix}.{key}" if prefix else key, child_pos(c, key, fb)
        self.keys(m, path, pos, BACKOFF_KEYS)
        changes: dict[str, Any] = {}
        for field, minimum, most in (("base", 0.0, MAX_BACKOFF), ("factor", 1.0, MAX_FACTOR),
                                     ("max", 0.0, MAX_BACKOFF)):
            if m.get(field) is not None:
                value = self.number(m, field, path, pos, minimum, maximum=most)
                if value is not None:
                    changes[field] = value
        if m.get("jitter") is not None:
            changes["jitter"] = self.choice(m, "jitter", path, pos, JITTERS) or base.jitter
        return replace(base, **changes) if changes else base

    # -- steps -------------------------------------------------------------------------------

    def steps(self, doc: Mapping[Any, Any], pos: Pos, defaults: _Defaults) -> tuple[Step, ...]:
        if "steps" not in doc:
            self.add(pos, "", "missing required key 'steps'")
            return ()
        if doc["steps"] is None:
            return ()
        raw = doc["steps"]
        if not isinstance(raw, list | tuple):
            # ``steps:`` followed by one step's keys, without the ``- `` of a list item
            hint = ("start each step with '- ', as in '  - name: build'"
                    if isinstance(raw, Mapping) and "name" in raw else "")
            self.at(doc, "steps", "", pos, f"expected a list of steps, got {describe(raw)}",
                    hint)
            return ()
        spos = child_pos(doc, "steps", pos)
        steps: list[Step] = []
        mappings: dict[int, Mapping[Any, Any]] = {}  # id(step) -> its mapping, for positions
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping):
                self.at(raw, i, "steps", spos, f"expected a mapping (a step), got "
                        f"{describe(item)}")
                continue
            built = self.step(item, pos_of(item, child_pos(raw, i, spos)), f"steps[{i}]",
                              defaults)
            if built is not None:
                steps.append(built)
                mappings[id(built)] = item
        self.graph(steps, mappings)
        return tuple(steps)

    def step(self, m: Mapping[Any, Any], pos: Pos, path: str, defaults: _Defaults
             ) -> Step | None:
        """One step; its ``needs`` are checked by ``graph`` once every step is known."""
        get = m.get
        executor = "shell" if get("executor") is None else self.text(m, "executor", path, pos)
        extra = self.executor_keys(m, executor, path, pos)
        if extra is not None:
            self.keys(m, path, pos, STEP_KEYS | extra, self.owner_hint)
        name = None
        if get("name") is None:
            self.add(pos, path, "missing required key 'name'")
        else:
            name = self.text(m, "name", path, pos)
            if name is not None and not _STEP_NAME.match(name):
                self.at(m, "name", path, pos, f"invalid step name {name!r}",
                        "use letters, digits, '_', '.' and '-'")
            elif name is not None and len(name) > MAX_STEP_NAME:
                self.at(m, "name", path, pos,
                        f"the step name is {len(name)} characters long, over the limit of "
                        f"{MAX_STEP_NAME}", "use a shorter name")
        run, call, cwd, shell = (None if get(k) is None else self.text(m, k, path, pos)
                                 for k in ("run", "call", "cwd", "shell"))
        needs = self.needs(m, path, pos)
        retry = self.retry(m, path, pos, defaults)
        timeout = defaults.timeout if get("timeout") is None else self.duration(
            m, "timeout", path, pos, MAX_TIMEOUT)
        coe = False if get("continueOnError") is None else self.boolean(
            m, "continueOnError", path, pos)
        env = {} if get("env") is None else self.str_map(m, "env", path, pos)
        if env:
            self.env_names(m, path, pos)
        secrets = self.secrets(m, path, pos)
        if extra is not None:  # rules of an unknown executor are unknown too
            self.executor_rules(m, executor or "shell", extra, path, pos)
        if call is not None and not _CALL.match(call):
            self.at(m, "call", path, pos, f"expected 'module:function' or a function name, "
                    f"got {call!r}")
        fan = _fanout.read(self, m, path, pos, name)
        if fan.source is not None:
            needs.append(fan.source)  # the items are its value: it finishes first
        if fan.foreach is not None and fan.foreach[0] == "param":
            self._param_refs.append((fan, fan.foreach[1]))
        if name is None:
            return None
        options = {k: v for k, v in m.items() if k in (extra or ()) and k not in STEP_KEYS}
        if get("persist") is not None and self.boolean(m, "persist", path, pos):
            if call is None:
                self.at(m, "persist", path, pos, "'persist' keeps a function's return value; "
                        "only a step with 'call' has one")
            options["persist"] = True  # the run keeps the value on disk, for resume
        cond = None if get("if") is None else condition(self, m, path, pos)
        detach = self.detach(m, path, pos, run, call)
        if detach == "allow":
            options["detach"] = detach  # read by the executors that start processes
        if self.isolate(m, path, pos, call) == "process":
            options["isolate"] = "process"  # read by the python executor
        step = Step(
            name=name, executor=executor or "shell", run=run, call=call,
            needs=tuple(dict.fromkeys(needs)), retry=retry, timeout=timeout,
            continue_on_error=bool(coe), env=MappingProxyType(env or {}), cwd=cwd, shell=shell,
            options=MappingProxyType(options), location=Location(self.file, *pos, path),
            secrets=secrets, condition=cond, **self.caching(m, path, pos),
            foreach=fan.foreach, matrix=fan.matrix, concurrency=fan.concurrency,
        )
        return step

    def caching(self, m: Mapping[Any, Any], path: str, pos: Pos) -> dict[str, Any]:
        """``cache``, ``cacheKey``, ``cacheFor``, ``inputs`` and ``outputs`` (declared output
        files) of one step, as ``Step`` fields."""
        get = m.get
        out: dict[str, Any] = {}
        if get("cache") is not None:
            out["cache"] = self.boolean(m, "cache", path, pos)
        if get("cacheKey") is not None:
            value = m["cacheKey"]
            if isinstance(value, int | float) and not isinstance(value, bool):
                out["cache_key"] = str(value)
            else:
                out["cache_key"] = self.text(m, "cacheKey", path, pos)
        if get("cacheFor") is not None:
            out["cache_for"] = self.duration(m, "cacheFor", path, pos, MAX_CACHE_FOR)
        for key, field in (("inputs", "inputs"), ("outputs", "output_files")):
            if get(key) is not None:
                out[field] = self.paths(m, key, path, pos)
        return out

    def paths(self, m: Mapping[Any, Any], key: str, path: str, pos: Pos) -> tuple[str, ...]:
        """A path or a list of paths (globs allowed), relative to the flow's folder."""
        raw = m[key]
        if isinstance(raw, str):
            raw = [raw]
        elif not isinstance(raw, list | tuple):
            self.at(m, key, path, pos, f"expected a path or a list of paths, got "
                    f"{describe(raw)}")
            return ()
        kpath, kpos = field_path(path, key), child_pos(m, key, pos)
        out: list[str] = []
        for i, item in enumerate(raw):
            if not isinstance(item, str) or not item.strip() or "\0" in item:
                self.at(raw, i, kpath, kpos, f"expected a file path or a glob, got "
                        f"{describe(item)}")
            else:
                out.append(item)
        return tuple(dict.fromkeys(out))

    def detach(self, m: Mapping[Any, Any], path: str, pos: Pos, run: str | None,
               call: str | None) -> str | None:
        """``detach: allow | stop``; only a step that starts a process has anything to detach."""
        if m.get("detach") is None:
            return None
        value = self.text(m, "detach", path, pos)
        if value is None:
            return None
        if value not in DETACH:
            self.at(m, "detach", path, pos, f"expected 'allow' or 'stop', got {value!r}",
                    "'detach: allow' lets a daemon the step starts outlive it")
            return None
        if call is not None and run is None:
            self.at(m, "detach", path, pos, "'detach' is for steps that start a process "
                    "('run'); a 'call' step runs in this process")
            return None
        return value

    def isolate(self, m: Mapping[Any, Any], path: str, pos: Pos, call: str | None
                ) -> str | None:
        """``isolate: process | thread``; only a ``call:`` step runs in this process."""
        if m.get("isolate") is None:
            return None
        value = self.text(m, "isolate", path, pos)
        if value is None:
            return None
        if value not in ISOLATE:
            self.at(m, "isolate", path, pos, f"expected 'process' or 'thread', got {value!r}",
                    "'isolate: process' runs the function in a child process that cancel "
                    "and timeout can stop")
            return None
        if call is None:
            self.at(m, "isolate", path, pos, "'isolate' is for steps with 'call'; a 'run' "
                    "step already runs in its own process")
            return None
        return value

    def executor_keys(self, m: Mapping[Any, Any], executor: str | None, path: str, pos: Pos
                      ) -> frozenset[str] | None:
        """Extra keys the executor accepts; None when it is unknown (then keys go unchecked)."""
        if executor is None:
            return None
        if executor in self._step_keys:
            return self._step_keys[executor]
        keys: frozenset[str] | None = None
        if executor not in self.executors:
            installed = ", ".join(self.executors.names())
            hint = " ".join(filter(None, (self.suggest(executor, self.executors.names()),
                                          f"installed executors: {installed}")))
            self.at(m, "executor", path, pos, f"unknown executor {executor!r}", hint)
            return None  # not cached: every step naming it is reported
        try:
            keys = self.executors.step_keys(executor)
        except ExecutorError as exc:  # a plugin that cannot be imported
            if "executor" in m:
                self.at(m, "executor", path, pos, str(exc))
            else:
                self.add(pos, path, str(exc))
        self._step_keys[executor] = keys
        return keys

    def owner_hint(self, key: str) -> str:
        """For a key another executor accepts (``image`` on a shell step): say which."""
        if self._all_keys is None:
            self._all_keys = {}
            for name in self.executors.names():
                try:
                    self._all_keys[name] = self.executors.step_keys(name)
                except ExecutorError:  # reported where a step uses it, if one does
                    self._all_keys[name] = frozenset()
        owners = [name for name, keys in self._all_keys.items() if key in keys]
        if not owners:
            return ""
        return f"{key!r} is for the {' or '.join(owners)} executor: add 'executor: {owners[0]}'"

    def executor_rules(self, m: Mapping[Any, Any], executor: str, extra: frozenset[str],
                       path: str, pos: Pos) -> None:
        has_run, has_call = m.get("run") is not None, m.get("call") is not None
        python_like = executor in PYTHON_LIKE or "call" in extra
        if has_call and not python_like:
            self.at(m, "call", path, pos, "'call' is only for python executors (python, dask)",
                    "add 'executor: python'")
        if m.get("shell") is not None and executor != "shell" and "shell" not in extra:
            self.at(m, "shell", path, pos, f"'shell' is only for the shell executor, not "
                    f"{executor!r}")
        if not (has_run or has_call) and any(
                isinstance(k, str) and k not in STEP_KEYS | extra
                and did_you_mean(k, ("run", "call")) for k in m):
            return  # 'runn:' is reported as a misspelt key; "needs 'run'" would say it twice
        if executor == "shell" and not (has_run or has_call):
            self.add(pos, path, "a shell step needs 'run'")
        elif executor in PYTHON_LIKE:
            if has_run and has_call:
                self.add(pos, path, f"a {executor} step takes 'run' (a script) or 'call' "
                         f"(a function), not both")
            elif not (has_run or has_call):
                self.add(pos, path, f"a {executor} step needs 'run' (a script) or 'call' "
                         f"(a function)")

    def secrets(self, m: Mapping[Any, Any], path: str, pos: Pos) -> tuple[str, ...]:
        """``secrets: [NAME, ...]``: environment variable names, read when the run starts."""
        raw = m.get("secrets")
        if raw is None:
            return ()
        if isinstance(raw, str):
            raw = [raw]
        elif not isinstance(raw, list | tuple):
            self.at(m, "secrets", path, pos, f"expected a list of environment variable names, "
                    f"got {describe(raw)}")
            return ()
        spath = f"{path}.secrets" if path else "secrets"
        spos = child_pos(m, "secrets", pos)
        names: list[str] = []
        for i, item in enumerate(raw):
            if isinstance(item, str) and _ENV_NAME.match(item):
                names.append(item)
            elif isinstance(item, str):
                self.at(raw, i, spath, spos, f"invalid environment variable name {item!r}",
                        "use letters, digits and '_', not starting with a digit")
            else:
                self.at(raw, i, spath, spos, f"expected an environment variable name, "
                        f"got {describe(item)}")
        return tuple(dict.fromkeys(names))

    def env_names(self, m: Mapping[Any, Any], path: str, pos: Pos) -> None:
        """``env`` names must be names a shell can read: ``A B`` or ``1ABC`` never arrive."""
        raw = m["env"]
        epath, epos = field_path(path, "env"), child_pos(m, "env", pos)
        for name in raw:
            if isinstance(name, str) and name and "=" not in name and "\0" not in name \
                    and not _ENV_NAME.match(name):
                self.at(raw, name, epath, epos, f"invalid environment variable name "
                        f"{name[:40]!r}",
                        "use letters, digits and '_', not starting with a digit", of_key=True)

    def param_names(self, doc: Mapping[Any, Any], params: Mapping[str, str], pos: Pos) -> None:
        """Two params that reach steps as the same ``CHRONUM_PARAM_*`` variable: one would
        silently hide the other."""
        raw = doc["params"]
        ppos = child_pos(doc, "params", pos)
        seen: dict[str, str] = {}
        for name in params:
            variable = param_variable(name)
            first = seen.setdefault(variable, name)
            if first != name:
                self.at(raw, name, "params", ppos,
                        f"parameters {first!r} and {name!r} both reach steps as {variable}",
                        "rename one of them", of_key=True)

    def needs(self, m: Mapping[Any, Any], path: str, pos: Pos) -> list[str]:
        raw = m.get("needs")
        if raw is None:
            return []
        if isinstance(raw, str):
            return [raw]
        if not isinstance(raw, list | tuple):
            self.at(m, "needs", path, pos, f"expected a step name or a list of step names, "
                    f"got {describe(raw)}")
            return []
        names = [n for n in raw if isinstance(n, str)]
        if len(names) < len(raw):
            npos, npath = child_pos(m, "needs", pos), f"{path}.needs"
            for i, item in enumerate(raw):
                if not isinstance(item, str):
                    self.at(raw, i, npath, npos, f"expected a step name, got {describe(item)}")
        return names

    def retry(self, m: Mapping[Any, Any], path: str, pos: Pos, d: _Defaults) -> RetryPolicy:
        raw = m.get("retry")
        if raw is None:
            return RetryPolicy(limit=d.retry, backoff=d.backoff)
        if not isinstance(raw, Mapping):
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                limit = self.integer(m, "retry", path, pos, 0, MAX_RETRIES)
            else:
                self.at(m, "retry", path, pos, f"expected an integer, got {describe(raw)}",
                        "or a mapping {limit, backoff, exitCodes}")
                limit = None
            return RetryPolicy(limit=d.retry if limit is None else limit, backoff=d.backoff)
        rpath, rpos = f"{path}.retry", child_pos(m, "retry", pos)
        self.keys(raw, rpath, rpos, RETRY_KEYS)
        limit = None if raw.get("limit") is None else self.integer(
            raw, "limit", rpath, rpos, 0, MAX_RETRIES)
        backoff = self.backoff(raw, "backoff", rpath, rpos, d.backoff)
        codes = raw.get("exitCodes")
        exit_codes: tuple[int, ...] | None = None
        if isinstance(codes, int) and not isinstance(codes, bool):
            exit_codes = (codes,)
        elif isinstance(codes, list | tuple):
            cpath, cpos = f"{rpath}.exitCodes", child_pos(raw, "exitCodes", rpos)
            exit_codes = tuple(c for i, c in enumerate(codes)
                               if self.integer(codes, i, cpath, cpos, -(2**31)) is not None)
        elif codes is not None:
            self.at(raw, "exitCodes", rpath, rpos,
                    f"expected a list of exit codes, got {describe(codes)}")
        on_timeout = True if raw.get("onTimeout") is None else self.boolean(
            raw, "onTimeout", rpath, rpos)
        return RetryPolicy(limit=d.retry if limit is None else limit, backoff=backoff,
                           exit_codes=exit_codes, on_timeout=on_timeout is not False)

    # -- the graph ---------------------------------------------------------------------------

    def graph(self, steps: list[Step], mappings: dict[int, Mapping[Any, Any]]) -> None:
        """Duplicate names, unknown or self ``needs``, and cycles, once every step is known."""
        first: dict[str, Step] = {}
        for step in steps:
            seen = first.setdefault(step.name, step)
            if seen is not step:
                loc = step.location or Location(self.file)
                line = seen.location.line if seen.location else 0
                self.at(mappings[id(step)], "name", loc.path, (loc.line, loc.col),
                        f"duplicate step name {step.name!r}", f"the first is on line {line}")
        for step in steps:
            for name in step.needs:
                if name == step.name:
                    self.need(step, mappings, name, f"step {name!r} needs itself")
                elif name not in first:
                    self.need(step, mappings, name, f"unknown step {name!r}",
                              self.suggest(name, first))
        edges = {name: [n for n in s.needs if n != name] for name, s in first.items()}
        cycle = dag.find_cycle(edges)
        if cycle:
            loc = first[cycle[0]].location or Location(self.file)
            self.add((loc.line, loc.col), loc.path, "cycle: " + " -> ".join(cycle),
                     dag.cycle_hint(cycle))
        else:
            check_references(self, steps, first, mappings)

    def need(self, step: Step, mappings: dict[int, Mapping[Any, Any]], name: str,
             message: str, hint: str = "") -> None:
        """Report ``name`` where the step's ``needs`` first mentions it."""
        loc = step.location or Location(self.file)
        m = mappings[id(step)]
        raw = m.get("needs")
        if raw is None or name not in (raw if isinstance(raw, list | tuple) else [raw]):
            # only named by ``foreach: {from: ...}``
            _fanout.report_source(self, m, loc.path, (loc.line, loc.col), message, hint)
        elif isinstance(raw, str):
            self.at(m, "needs", loc.path, (loc.line, loc.col), message, hint)
        else:
            npos = child_pos(m, "needs", (loc.line, loc.col))
            self.at(raw, list(raw).index(name), f"{loc.path}.needs", npos, message, hint)


def param_variable(name: str) -> str:
    """The environment variable a param reaches steps as (as ``engine.run_environment``
    names it): ``-p a-b`` and ``-p a_b`` are both ``CHRONUM_PARAM_A_B``."""
    return "CHRONUM_PARAM_" + _PARAM_CHARS.sub("_", name).upper()


def build(doc: Any, *, file: str, base_dir: Path, source: str | None,
          executors: ExecutorNames, params: Mapping[str, str] | None = None,
          default_name: str | None = None) -> Flow:
    """Validate ``doc`` and return the Flow, or raise SpecError with every problem found."""
    builder = _Builder(file, executors)
    flow = builder.flow(doc, default_name)
    if flow is None or builder.problems:
        raise SpecError(builder.problems)
    flow = replace(flow, source=source, base_dir=base_dir)
    return apply_params(flow, params, file, doc) if params else flow


def apply_params(flow: Flow, params: Mapping[str, Any] | None, file: str, doc: Any = None
                 ) -> Flow:
    """Run-time values for declared ``params`` (``-p region=us``); undeclared names are errors."""
    if not params:
        return flow
    checker = Checker(file)
    pos = child_pos(doc, "params", pos_of(doc, (0, 0))) if isinstance(doc, Mapping) else (0, 0)
    values = dict(flow.params)
    for name, value in params.items():
        if name not in values:
            hint = checker.suggest(name, values) or (
                f"declared parameters: {', '.join(values)}" if values
                else "the flow declares no parameters")
            checker.add(pos, "params", f"unknown parameter {name!r}", hint)
        elif isinstance(value, bool):
            values[name] = "true" if value else "false"
        else:
            values[name] = str(value)
    if checker.problems:
        raise SpecError(checker.problems)
    return replace(flow, params=MappingProxyType(values))
