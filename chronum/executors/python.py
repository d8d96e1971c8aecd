"""The ``python`` executor: a script in a subprocess, or a function called in-process.

``run: path/to/script.py [args]`` runs the script (relative to the flow file's folder) with the
current interpreter, in its own process group like a shell step.

``call: module:function`` (or a bare ``function`` from the notebook namespace passed as
``ctx.extras["namespace"]``) calls the function in this process; its return value is the step's
value, handed to dependents. Parameters are filled by name: an upstream step's name gives its
value, ``ctx``/``context`` gives the ``StepContext``, ``**kwargs`` takes every input.

Output: ``print()`` inside the function reaches the log of the step that called it, even with many
steps running at once, because ``sys.stdout``/``sys.stderr`` are replaced (once) by routers that
look up the current step in a ``ContextVar``; the worker threads and tasks carry it along. What
bypasses them (a thread the function starts, a handler holding the old ``sys.stderr``, a child
process, ``os.write(1, ...)``) is taken from file descriptors 1 and 2 by ``capture``.

Cancellation: an ``async def`` function is cancelled with the step's task. A sync function runs
in a worker thread (so the event loop stays free), and Python cannot kill a thread: on
cancellation (or timeout) the step ends at once, ``ctx.cancelled`` becomes true and
``ctx.check()`` raises, so a function that checks stops at its next check. One that does not
runs on in the background, its output dropped; until it ends, ``still_running`` names it (the
views show "cancelled — still running in the background"). ``isolate: process`` runs the call
in a child process instead (``chronum._isolated``), which cancel and timeout stop like a shell step.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import inspect
import logging
import os
import queue
import shlex
import sys
import threading
import traceback
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar, copy_context
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, TextIO, cast

from ..model import Step
from . import capture
from .base import LogSink, Result, StepContext
from .process import MAX_LINE, describe_exit, run_process

__all__ = ["CONTEXT_NAMES", "STILL_RUNNING", "CallPlan", "PythonExecutor", "call_plan",
           "find_function", "on_thread_end", "refresh_modules", "still_running",
           "still_running_in_flow"]

#: Parameter names that receive the ``StepContext`` rather than an upstream value.
CONTEXT_NAMES = frozenset({"ctx", "context"})


#: How a step whose function's thread outlived its cancel or timeout is described.
STILL_RUNNING = "cancelled — still running in the background"


class _CallError(Exception):
    """The function could not be found or bound; the message is shown to the user."""


# -- output routing -------------------------------------------------------------------------


class _StepOutput:
    """One call's ``print()`` output, split into lines for its step's log, from any thread.

    Lines written in a worker thread are handed to the event loop with ``call_soon_threadsafe``,
    so the log sink only ever runs on the loop thread, in order.
    """

    def __init__(self, log: LogSink, loop: asyncio.AbstractEventLoop) -> None:
        self._log = log
        #: Where the pieces of a line too long to keep whole go (see ``process.MAX_LINE``).
        self._piece: LogSink = getattr(log, "piece", log)
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._partial = {"stdout": "", "stderr": ""}
        self._lock = threading.Lock()
        self.closed = False

    def _emit(self, stream: str, line: str, piece: bool = False) -> None:
        sink = self._piece if piece else self._log
        if threading.get_ident() == self._loop_thread:
            sink(stream, line)
            return
        try:
            self._loop.call_soon_threadsafe(sink, stream, line)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.closed = True

    def write(self, stream: str, text: str) -> None:
        if self.closed:
            return
        with self._lock:
            *lines, rest = (self._partial[stream] + text).split("\n")
            for line in lines:
                while len(line) > MAX_LINE:
                    self._emit(stream, line[:MAX_LINE], piece=True)
                    line = line[MAX_LINE:]
                self._emit(stream, line)
            while len(rest) > MAX_LINE:
                self._emit(stream, rest[:MAX_LINE], piece=True)
                rest = rest[MAX_LINE:]
            self._partial[stream] = rest

    def flush(self) -> None:
        with self._lock:
            for stream, rest in self._partial.items():
                if rest and not self.closed:
                    self._emit(stream, rest)
                self._partial[stream] = ""


_current_output: ContextVar[_StepOutput | None] = ContextVar("chronum_step_output", default=None)


class _StreamRouter:
    """Stands in for ``sys.stdout``/``sys.stderr``: writes go to the current step, if any."""

    def __init__(self, real: TextIO, stream: str) -> None:
        self._real = real
        self._stream = stream

    def write(self, text: str) -> int:
        output = _current_output.get()
        if output is None:
            if capture.route(self._stream, text, self._real):
                return len(text)
            return self._real.write(text)
        output.write(self._stream, text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if _current_output.get() is None:
            capture.terminal(self._real).flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _StepLogging(logging.Handler):
    """``logging`` inside a step reaches that step's log, as ``print`` does: a handler on the
    root logger that writes a record to the step whose call made it (none outside steps).
    Handlers the user set up still get the record too; Chronum's own records are not a
    step's output."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        output = _current_output.get()
        if output is None or record.name == "chronum" or record.name.startswith("chronum."):
            return
        try:
            output.write("stderr", self.format(record) + "\n")
        except Exception:
            self.handleError(record)


    # On the root logger only while a call runs: outside steps, logging stays as the user
    # (or Python's defaults, which a handler present would switch off) has it.
    _users = 0
    _lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self._users += 1
            if self._users == 1:
                logging.getLogger().addHandler(self)

    def leave(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                logging.getLogger().removeHandler(self)


_step_logging = _StepLogging()


def _install_routers() -> None:
    # Checked on every call: pytest, IPython and others swap sys.stdout after we installed ours.
    if not isinstance(sys.stdout, _StreamRouter) and sys.stdout is not None:
        sys.stdout = cast(TextIO, _StreamRouter(sys.stdout, "stdout"))
    if not isinstance(sys.stderr, _StreamRouter) and sys.stderr is not None:
        sys.stderr = cast(TextIO, _StreamRouter(sys.stderr, "stderr"))


# -- finding and binding the function -------------------------------------------------------


class CallPlan(NamedTuple):
    """How to call a function, worked out once: its parameters and whether it is async.

    The SDK asks the same of its step functions (which steps they take), so there is one
    answer per function for both.
    """

    is_async: bool
    #: (name, required, positional_only) in signature order; ``*args`` never receives values.
    params: tuple[tuple[str, bool, bool], ...]
    var_keyword: bool

    def takes(self, name: str) -> bool:
        """Whether a call binds an input named ``name`` (by parameter, or ``**kwargs``)."""
        return self.var_keyword or any(p[0] == name for p in self.params)


_callables: dict[tuple[str, str], Callable[..., Any]] = {}
_plans: weakref.WeakKeyDictionary[Callable[..., Any], CallPlan] = weakref.WeakKeyDictionary()
_paths_added: set[str] = set()


def _add_to_path(folder: Path) -> None:
    path = str(folder.resolve())
    if path not in _paths_added:
        _paths_added.add(path)
        if path not in sys.path:
            sys.path.insert(0, path)


#: The flow folder's own modules as last imported here: name -> (file, mtime_ns, size).
_stamps: dict[str, tuple[str, int, int]] = {}
#: Modules whose edited file could not be imported again: name -> why (their steps fail).
_broken: dict[str, str] = {}
#: (module, flow folder, module's file) -> the folder's own file of that module, or None when
#: the folder has none (an installed module): decided once, not on every call.
_owners: dict[tuple[str, str, str], str | None] = {}


def _stamp(file: str) -> tuple[str, int, int] | None:
    try:
        st = os.stat(file)
    except OSError:
        return None
    return file, st.st_mtime_ns, st.st_size


def _own_file(module_name: str, base_dir: Path) -> str | None:
    """The file in the flow's folder that ``import module_name`` means there, if any."""
    base = os.path.join(os.fspath(base_dir), *module_name.split("."))
    for file in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(file):
            return file
    return None


def refresh_modules(targets: Iterable[str], base_dir: Path) -> None:
    """Before a run (and before a cell's checks): each module its ``call:`` steps name is the
    flow folder's file as it is now. One edited since it was imported is imported again, so
    running a flow again in the same process (a notebook cell, above all) runs the code as it
    is now, as a new process would; one of that name imported from another folder (another
    flow's) is replaced by this folder's. Only those modules: the modules they import are not.
    Checked once per run, not per step: a step resolves its function from what this left."""
    for module_name in dict.fromkeys(t.partition(":")[0] for t in targets if ":" in t):
        _broken.pop(module_name, None)
        try:
            _fresh(module_name, base_dir)
        except _CallError as exc:
            # Its steps fail with this, instead of running the code from before the edit.
            _broken[module_name] = str(exc)


def _fresh(module_name: str, base_dir: Path) -> None:
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None) if module is not None else None
    if module is None or not file:
        return
    where = (module_name, os.fspath(base_dir), file)
    own = _owners.get(where, "")
    if own == "":  # not decided yet for this module, folder and file
        own = _owners[where] = _own_file(module_name, base_dir)
    if own is None:
        return  # installed, or elsewhere on sys.path: not the flow folder's to watch
    now = _stamp(file)
    if own != file:
        if os.path.realpath(own) != os.path.realpath(file):
            _load(module_name, own)  # another folder's module of that name
            return
        _owners[where] = file  # the same file, by another path
    before = _stamps.get(module_name)
    if before is None or now is None or now == before:
        if before is None and now is not None:
            _stamps[module_name] = now
        return
    _load(module_name, file, module)


def _load(module_name: str, file: str, module: Any = None) -> None:
    """Import ``module_name`` from ``file`` (again, into ``module`` when given)."""
    try:
        if module is not None:
            importlib.reload(module)
        else:
            spec = importlib.util.spec_from_file_location(module_name, file)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {file}")
            fresh = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = fresh
            try:
                spec.loader.exec_module(fresh)
            except BaseException:
                sys.modules.pop(module_name, None)
                raise
    except Exception as exc:
        raise _CallError(f"cannot import module {module_name!r}: {_summary(exc)}") from exc
    stamp = _stamp(file)
    if stamp is not None:
        _stamps[module_name] = stamp
    for key in [k for k in _callables if k[1].partition(":")[0] == module_name]:
        del _callables[key]


def _import_target(target: str, base_dir: Path) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise _CallError(f"call: {target!r} should be 'module:function'")
    if _broken and module_name in _broken:
        raise _CallError(_broken[module_name])
    key = (str(base_dir), target)
    if key in _callables:
        return _callables[key]
    _add_to_path(base_dir)
    importlib.invalidate_caches()  # the module file may be newer than the import system's view
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise _CallError(f"cannot import module {module_name!r}: {_summary(exc)}") from exc
    _fresh(module_name, base_dir)  # imported now, or before from another folder
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise _CallError(f"module {module_name!r} has no attribute {attr!r}") from None
    if callable(obj):
        _callables[key] = obj
    return cast(Callable[..., Any], obj)


def _resolve(target: str, ctx: StepContext) -> Callable[..., Any]:
    if ":" in target:
        obj: Any = _import_target(target, ctx.flow.base_dir)
    else:
        namespace = ctx.extras.get("namespace")
        if namespace is None:
            raise _CallError(
                f"call: {target!r}: no notebook namespace here; write 'module:function'"
            )
        if target not in namespace:
            raise _CallError(f"function {target!r} is not defined in the notebook namespace")
        obj = namespace[target]
    if not callable(obj):
        raise _CallError(f"call: {target!r} is not callable (it is a {type(obj).__name__})")
    return cast(Callable[..., Any], obj)


def _public_functions(names: dict[str, Any]) -> list[str]:
    return [k for k, v in names.items() if callable(v) and not k.startswith("_")]


def find_function(target: str, base_dir: Path, namespace: Mapping[str, Any] | None
                  ) -> Callable[..., Any] | None:
    """The function a ``call:`` names, found as a run would find it, before the run; None for
    a bare name without a namespace to look in. Raises ``LookupError(message, word,
    choices)``: what is wrong, the name not found, and names it may have meant."""
    if ":" not in target:
        if namespace is None:
            return None
        if target not in namespace:
            raise LookupError(f"function {target!r} is not defined in the notebook", target,
                              _public_functions(dict(namespace)))
        obj = namespace[target]
    else:
        try:
            obj = _import_target(target, base_dir)
        except _CallError as exc:
            module = sys.modules.get(target.partition(":")[0])
            attr = target.partition(":")[2]
            choices = _public_functions(vars(module)) if module is not None else []
            raise LookupError(str(exc), attr, choices) from None
    if not callable(obj):
        raise LookupError(f"{target!r} is not a function (it is a {type(obj).__name__})",
                          target, [])
    return cast(Callable[..., Any], obj)


def _make_plan(func: Callable[..., Any]) -> CallPlan:
    is_async = inspect.iscoroutinefunction(func)
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # some builtins have no signature: call without arguments
        return CallPlan(is_async, (), False)
    params = []
    var_keyword = False
    for p in signature.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_keyword = True
        elif p.kind is not p.VAR_POSITIONAL:
            params.append((p.name, p.default is p.empty, p.kind is p.POSITIONAL_ONLY))
    return CallPlan(is_async, tuple(params), var_keyword)


def call_plan(func: Callable[..., Any]) -> CallPlan:
    """The function's ``CallPlan``, remembered per function (weakly: a redefined notebook
    function is a new key, and the old one can be freed)."""
    try:
        plan = _plans.get(func)
    except TypeError:  # not weak-referenceable: work it out every time
        return _make_plan(func)
    if plan is None:
        plan = _make_plan(func)
        with contextlib.suppress(TypeError):
            _plans[func] = plan
    return plan


def _bind(plan: CallPlan, ctx: StepContext, *, where: str | None = None
          ) -> tuple[list[Any], dict[str, Any]]:
    """Arguments for a call: upstream values by parameter name, the context for ``ctx``.

    ``where`` names a place without the step context (a dask worker): asking for it there is
    an error rather than a value that cannot travel."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    used: set[str] = set()
    for name, required, positional_only in plan.params:
        if name in CONTEXT_NAMES:
            if where is not None:
                raise _CallError(f"parameter {name!r}: a step that runs on {where} has no "
                                 "step context")
            value: Any = ctx
        elif name in ctx.inputs:
            value = ctx.inputs[name]
            used.add(name)
        elif required:
            available = ", ".join(sorted(ctx.inputs)) or "none"
            raise _CallError(
                f"required parameter {name!r} matches no upstream step (inputs: {available})"
            )
        else:
            continue
        if positional_only:
            args.append(value)
        else:
            kwargs[name] = value
    if plan.var_keyword:
        for name, value in ctx.inputs.items():
            if name not in used and name not in kwargs:
                kwargs[name] = value
    return args, kwargs


# -- calling --------------------------------------------------------------------------------


class _Outcome(NamedTuple):
    value: Any = None
    error: BaseException | None = None


class _Workers:
    """The threads that run sync ``call:`` functions, so the event loop stays free.

    Not ``loop.run_in_executor``: ``asyncio.run`` joins the default executor at exit, so one
    abandoned call (a cancelled or timed-out step, which Python cannot stop) would hold the
    process until it returned. These threads are daemons: a call still running never keeps the
    process alive at exit. A call is one queue put in and one ``call_soon_threadsafe`` back.
    A thread idle for a minute ends; a new one starts when every thread is busy.
    """

    IDLE_TIMEOUT = 60.0

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, asyncio.Future[_Outcome],
                                             Callable[[], _Outcome]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._count = 0

    def call(self, func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any],
             on_end: Callable[[], None] | None = None) -> asyncio.Future[_Outcome]:
        """``func(*args, **kwargs)`` in a worker thread; ``on_end()`` runs in that thread
        when the call returns, even if nobody waits for it any more."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Outcome] = loop.create_future()
        context = copy_context()  # the step's output router travels with the call

        def job() -> _Outcome:
            try:
                return context.run(_call_sync, func, args, kwargs)
            finally:
                if on_end is not None:
                    on_end()

        self._queue.put((loop, future, job))
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # that thread takes it
                return future
            self._count += 1
            name = f"chronum-call-{self._count}"
        threading.Thread(target=self._work, name=name, daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            try:
                loop, future, job = self._queue.get(timeout=self.IDLE_TIMEOUT)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0 and self._queue.empty():
                        self._idle -= 1
                        return
                continue
            try:
                outcome = job()
            except BaseException as exc:  # a function raising KeyboardInterrupt, say: the step
                outcome = _Outcome(error=exc)  # fails, and the thread and its waiter live on
            # A closed loop raises RuntimeError: nobody waits for this call any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, outcome)
            with self._lock:
                self._idle += 1


def _settle(future: asyncio.Future[_Outcome], outcome: _Outcome) -> None:
    if not future.done():  # a cancelled step no longer waits for it
        future.set_result(outcome)


_workers = _Workers()


# -- calls that outlived their step ---------------------------------------------------------


class _Background(NamedTuple):
    flow: str
    #: Called (in the call's thread) when it ends.
    waiters: list[Callable[[], None]]


_background: dict[tuple[str, str], _Background] = {}
_background_lock = threading.Lock()


def _abandon(key: tuple[str, str], flow: str, ended: threading.Event) -> bool:
    """The call of step ``key`` = (run id, step) was cancelled: remember its thread while it
    runs on. False if it has already ended."""
    with _background_lock:
        if ended.is_set():
            return False
        _background[key] = _Background(flow, [])
        return True


def _ended(key: tuple[str, str], ended: threading.Event) -> None:
    with _background_lock:
        ended.set()
        left = _background.pop(key, None)
    for waiter in left.waiters if left is not None else ():
        with contextlib.suppress(Exception):
            waiter()


def still_running(run_id: str) -> tuple[str, ...]:
    """The steps of run ``run_id`` (in this process) whose function's thread still runs
    after their step was cancelled or timed out."""
    with _background_lock:
        return tuple(step for rid, step in _background if rid == run_id)


def still_running_in_flow(flow: str) -> list[tuple[str, str]]:
    """(run id, step) of the cancelled calls of flow ``flow`` whose thread still runs."""
    with _background_lock:
        return [key for key, entry in _background.items() if entry.flow == flow]


def on_thread_end(run_id: str, step: str, callback: Callable[[], None]) -> bool:
    """Call ``callback()`` (from the call's own thread) when the thread of step ``step`` of
    run ``run_id`` ends; False, and no call, when it is not running."""
    with _background_lock:
        entry = _background.get((run_id, step))
        if entry is None:
            return False
        entry.waiters.append(callback)
        return True


def _call_sync(func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> _Outcome:
    # Runs in the worker thread; catching here keeps SystemExit off the event loop.
    try:
        outcome = _Outcome(func(*args, **kwargs))
    except (Exception, SystemExit) as exc:
        outcome = _Outcome(error=exc)
    return outcome


async def _output_settled() -> None:
    """What a call wrote to fds 1/2 (a child process, ``os.write``) reaches its step's log
    before the step ends. Asking is one ``poll`` on the loop. Only when output is pending does
    a worker thread wait for the capture's readers (off the loop, which may be the one that
    drains a slow terminal), and the lines they hand over land before the step's end.

    Asked here rather than in the worker thread after the call: there, the extra Python work
    competes with the busy loop for the GIL on every call, output or not.
    """
    if capture.pending():
        await _workers.call(capture.settle, [], {})
        await asyncio.sleep(0)


async def _await(awaitable: Awaitable[Any]) -> _Outcome:
    try:
        return _Outcome(await awaitable)
    except (Exception, SystemExit) as exc:
        return _Outcome(error=exc)


def _summary(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _log_traceback(log: LogSink, exc: BaseException) -> None:
    # Drop the first frame: it is ours (_call_sync or _await), not the user's.
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    for chunk in traceback.format_exception(type(exc), exc, tb):
        for line in chunk.rstrip("\n").split("\n"):
            log("stderr", line)


def _failed(ctx: StepContext, exc: BaseException) -> Result:
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None or isinstance(code, int):
            return Result(code or 0, error=None if not code else f"sys.exit({code})")
        ctx.log("stderr", str(code))
        return Result(1, error=str(code))
    _log_traceback(ctx.log, exc)
    return Result(1, error=_summary(exc))


class PythonExecutor:
    """Runs ``run:`` scripts in a subprocess and ``call:`` functions in-process."""

    step_keys: ClassVar[frozenset[str]] = frozenset()

    async def execute(self, step: Step, ctx: StepContext) -> Result:
        if step.call and step.run:
            return _refuse(ctx, "a python step takes either 'run:' or 'call:', not both")
        if step.call:
            # A flow written with chronum.Flow (the SDK) hands over its function objects.
            functions = ctx.extras.get("functions")
            given = functions.get(step.name) if functions else None
            if given is None and functions and step.name.endswith("]"):  # a fan-out instance
                given = functions.get(step.name.partition("[")[0])
            return await self._call(step.call, ctx, given, step)
        if step.run:
            return await self._script(step.run, ctx, step.options.get("detach") == "allow")
        return _refuse(ctx, "a python step needs 'run: script.py' or 'call: module:function'")

    async def _script(self, run: str, ctx: StepContext, detach: bool = False) -> Result:
        try:
            argv = shlex.split(run)
        except ValueError as exc:
            return _refuse(ctx, f"cannot parse run: {run!r}: {exc}", code=2)
        script = (ctx.flow.base_dir / argv[0]).resolve()
        if not script.is_file():
            return _refuse(ctx, f"python script not found: {script}", code=2)
        code = await run_process(
            [sys.executable, "-u", str(script), *argv[1:]],  # -u: lines arrive as printed
            env=ctx.env,
            cwd=ctx.cwd,
            log=ctx.log,
            grace=ctx.grace,
            detach=detach,
            on_spawn=ctx.spawned,
        )
        return Result(code, error=None if code == 0 else describe_exit(code))

    async def _call(self, target: str, ctx: StepContext,
                    given: Callable[..., Any] | None = None, step: Step | None = None
                    ) -> Result:
        _install_routers()
        output = _StepOutput(ctx.log, asyncio.get_running_loop())
        # Set before the import, so what a module prints as it loads is this step's output.
        token = _current_output.set(output)
        capture.enter_call(output)
        _step_logging.enter()
        try:
            return await self._called(target, ctx, given, output, step)
        finally:
            _step_logging.leave()
            capture.leave_call(output)
            _current_output.reset(token)
            output.flush()
            output.closed = True  # a task or thread the function left behind no longer logs here

    async def _called(self, target: str, ctx: StepContext, given: Callable[..., Any] | None,
                      output: _StepOutput, step: Step | None = None) -> Result:
        try:
            func = given if given is not None else _resolve(target, ctx)
            plan = call_plan(func)
            args, kwargs = _bind(plan, ctx)
        except _CallError as exc:
            if exc.__cause__ is not None and not isinstance(exc.__cause__, ImportError):
                _log_traceback(ctx.log, exc.__cause__)  # an error inside the module: show where
            return _refuse(ctx, f"{target}: {exc}")
        if step is not None and step.options.get("isolate") == "process":
            try:
                return await _isolated_call(target, func, args, kwargs, ctx)
            except asyncio.CancelledError:
                ctx.cancel_event.set()
                raise
        name = step.name if step is not None else ctx.env.get("CHRONUM_STEP", target)
        key, ended = (ctx.run_id, name), threading.Event()
        try:
            if plan.is_async:
                outcome = await _await(func(*args, **kwargs))
            else:
                outcome = await _workers.call(func, args, kwargs,
                                              on_end=lambda: _ended(key, ended))
                if outcome.error is None and inspect.isawaitable(outcome.value):
                    outcome = await _await(outcome.value)
        except asyncio.CancelledError:
            ctx.cancel_event.set()  # ctx.cancelled, ctx.check(): the function may stop itself
            if not plan.is_async and _abandon(key, ctx.flow.name, ended):
                output.closed = True
                ctx.log("stderr", f"chronum: {target} cancelled; Python cannot stop its "
                        "thread, which keeps running in the background (check ctx.cancelled "
                        "or call ctx.check() in it, or use isolate: process)")
            raise
        await _output_settled()
        if outcome.error is not None:
            return _failed(ctx, outcome.error)
        return Result(0, value=outcome.value)


def _refuse(ctx: StepContext, message: str, code: int = 1) -> Result:
    ctx.log("stderr", f"chronum: {message}")
    return Result(code, error=message)


#: The child's entry: chronum is imported from where this process has it.
_CHILD = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
          "from chronum._isolated import main; sys.exit(main(sys.argv[1:]))")


async def _isolated_call(target: str, func: Callable[..., Any], args: list[Any],
                         kwargs: dict[str, Any], ctx: StepContext) -> Result:
    """``isolate: process``: the call in a child process, stopped like a shell step."""
    import pickle
    import shutil
    import tempfile

    import cloudpickle  # type: ignore[import-untyped]

    from .._isolated import ChildContext

    # No env in the file: the child gets it as its environment (secrets included), and fills
    # ctx.env from there, so a runner killed before the child read the file leaves no secret.
    child_ctx = ChildContext(ctx.run_id, ctx.attempt, {}, ctx.cwd, dict(ctx.params),
                             dict(ctx.inputs), ctx.grace)
    args = [child_ctx if a is ctx else a for a in args]
    kwargs = {k: child_ctx if v is ctx else v for k, v in kwargs.items()}
    folder = Path(tempfile.mkdtemp(prefix="chronum-isolate-"))
    try:
        source, target_file = folder / "call.pkl", folder / "outcome.pkl"
        try:
            with open(source, "wb") as fh:
                pickle.dump(list(sys.path), fh)
                cloudpickle.dump((func, args, kwargs), fh)
        except Exception as exc:
            return _refuse(ctx, f"{target}: isolate: process: cannot send the function and its "
                           f"arguments to a child process: {_summary(exc)}")
        home = str(Path(__file__).resolve().parent.parent.parent)
        code = await run_process(
            [sys.executable, "-u", "-S", "-c", _CHILD, home, str(source), str(target_file)],
            env=ctx.env, cwd=ctx.cwd, log=ctx.log, grace=ctx.grace, on_spawn=ctx.spawned)
        if not target_file.exists():
            return Result(code or 1, error=describe_exit(code) if code else
                          "the child process ended without sending a result")
        kind, value = cloudpickle.loads(target_file.read_bytes())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if kind == "ok":
        return Result(0, value=value)
    if kind == "exit":
        return _failed(ctx, SystemExit(value))
    return Result(1, error=str(value))
