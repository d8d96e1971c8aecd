"""The ``dask`` executor: python steps as tasks on a Dask ``distributed`` cluster.

Named ``dask_executor`` so that nothing here can be mistaken for the ``dask`` package.

The cluster: ``DaskExecutor(address=...)``, else ``CHRONUM_DASK_ADDRESS`` from the step's
environment (the flow's ``dask: {address: ...}`` arrives that way), else a ``LocalCluster``
started on first use and closed when the run ends (``finish_run``). One executor serves one run.

``call: module:function`` (or a notebook function) is pickled here with cloudpickle, by value
unless its module is installed, and sent as bytes to ``_call_task`` on a worker: workers need
only Chronum installed, not the user's modules (dask/distributed#8607). The step's value is the
task's *future*: a dask step that needs it gets the future as an argument, so values travel
between workers without a round trip through the client; when the run ends, the futures still
in the run's outputs are fetched, so ``run.outputs`` holds values. ``run: script.py`` runs the
script in a subprocess on a worker.

Output: ``print()`` in a task and a script's output travel as Dask events (``log_event``) to
the client, which hands them to the step's log as they arrive. Exceptions come back with their
traceback, written to the step's log. Cancellation and timeouts cancel the future; a script's
process group is then stopped by the worker (SIGTERM, grace, SIGKILL), a sync function's thread
cannot be stopped and finishes in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import inspect
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import traceback
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TextIO, cast

from ..model import Step
from .base import LogSink, Result, StepContext
from .process import describe_exit

_find = importlib.util.find_spec
if _find("distributed") is None or _find("cloudpickle") is None:
    raise ImportError("the dask executor needs dask.distributed and cloudpickle: "
                      "pip install 'chronum[dask]'")

__all__ = ["ADDRESS_VAR", "DaskExecutor"]

#: The scheduler address, read from the step environment.
ADDRESS_VAR = "CHRONUM_DASK_ADDRESS"
#: ``1``: the LocalCluster started for a run uses worker processes rather than threads.
PROCESSES_VAR = "CHRONUM_DASK_PROCESSES"
_TOPIC = "chronum-log"


def _task_failures(record: logging.LogRecord) -> bool:
    """Drops a worker's "Compute Failed" report of a task's exception: the failed step shows
    that exception, with its traceback, in its own log (a cluster's other troubles still
    print)."""
    return not str(record.msg).startswith("Compute Failed")
_POLL = 0.1


# -- on the worker ------------------------------------------------------------------------------

_task_tag = threading.local()


def _emit(tag: str, stream: str, line: str, worker: Any = None) -> None:
    from distributed import get_worker

    # ValueError: not on a worker (the task function called directly).
    with contextlib.suppress(ValueError):
        (worker or get_worker()).log_event(_TOPIC, [tag, stream, line])


class _TaskStream:
    """Stands in for ``sys.stdout``/``sys.stderr`` on a worker: a task's lines become events."""

    def __init__(self, real: TextIO, stream: str) -> None:
        self._real, self._stream = real, stream
        self._partial = threading.local()

    def write(self, text: str) -> int:
        tag = getattr(_task_tag, "tag", None)
        if tag is None:
            return self._real.write(text)
        *lines, rest = (getattr(self._partial, "text", "") + text).split("\n")
        self._partial.text = rest
        for line in lines:
            _emit(tag, self._stream, line)
        return len(text)

    def end_task(self, tag: str) -> None:
        rest = getattr(self._partial, "text", "")
        self._partial.text = ""
        if rest:
            _emit(tag, self._stream, rest)

    def flush(self) -> None:
        if getattr(_task_tag, "tag", None) is None:
            self._real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


_install_lock = threading.Lock()


def _streams() -> tuple[_TaskStream, _TaskStream]:
    with _install_lock:
        if not isinstance(sys.stdout, _TaskStream):
            sys.stdout = cast(TextIO, _TaskStream(sys.stdout, "stdout"))
        if not isinstance(sys.stderr, _TaskStream):
            sys.stderr = cast(TextIO, _TaskStream(sys.stderr, "stderr"))
        return cast(_TaskStream, sys.stdout), cast(_TaskStream, sys.stderr)


def _call_task(payload: bytes, args: list[Any], kwargs: dict[str, Any], tag: str) -> Any:
    """Load the pickled step function and call it, its ``print()`` output going to the step."""
    import cloudpickle  # type: ignore[import-untyped]

    func = cloudpickle.loads(payload)
    out, err = _streams()
    _task_tag.tag = tag
    try:
        value = func(*args, **kwargs)
        if inspect.isawaitable(value):
            value = asyncio.run(_awaited(value))
        return value
    finally:
        _task_tag.tag = None
        out.end_task(tag)
        err.end_task(tag)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _still_wanted(key: Any) -> bool:
    from distributed import get_worker

    if key is None:
        return True
    ts = get_worker().state.tasks.get(key)
    return ts is not None and ts.state not in ("cancelled", "released", "forgotten")


def _script_task(argv: list[str], env: dict[str, str], cwd: str, grace: float, tag: str) -> int:
    """Run a script in its own process group on the worker; stop it if the task is cancelled."""
    from distributed import get_worker

    worker = get_worker()  # thread-local: the reader threads cannot look it up themselves
    key = worker.get_current_task()
    proc = subprocess.Popen([sys.executable, "-u", *argv], env=env, cwd=cwd,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    readers = [threading.Thread(target=_pump, args=(pipe, tag, name, worker), daemon=True)
               for pipe, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))]
    for reader in readers:
        reader.start()
    while True:
        try:
            code = proc.wait(timeout=_POLL)
            break
        except subprocess.TimeoutExpired:
            if not _still_wanted(key):
                _killpg(proc.pid, signal.SIGTERM)
                try:
                    code = proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    _killpg(proc.pid, signal.SIGKILL)
                    code = proc.wait()
                break
    _killpg(proc.pid, signal.SIGKILL)  # whatever the script left in its group
    for reader in readers:
        reader.join(timeout=1.0)
    return 128 - code if code < 0 else code


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _pump(pipe: Any, tag: str, stream: str, worker: Any) -> None:
    with pipe:
        for raw in pipe:
            _emit(tag, stream, raw.decode("utf-8", "replace").rstrip("\r\n"), worker)


# -- on the client ------------------------------------------------------------------------------

_payloads: weakref.WeakKeyDictionary[Callable[..., Any], bytes] = weakref.WeakKeyDictionary()


def _installed(module: Any) -> bool:
    file = getattr(module, "__file__", None)
    if file is None:
        return True  # built in
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    return any(os.path.abspath(file).startswith(os.path.join(p, "")) for p in prefixes)


def _pickle(func: Callable[..., Any]) -> bytes:
    """The function as cloudpickle bytes; its own module by value unless installed."""
    import cloudpickle

    with contextlib.suppress(TypeError, KeyError):
        return _payloads[func]
    module = sys.modules.get(getattr(func, "__module__", "") or "")
    if module is not None and module.__name__ != "__main__" and not _installed(module):
        cloudpickle.register_pickle_by_value(module)
    payload: bytes = cloudpickle.dumps(func)
    with contextlib.suppress(TypeError):
        _payloads[func] = payload
    return payload


def _traceback_text(exc: BaseException, tb: Any, source: str | None) -> str:
    """The task's traceback, its frames located in ``source``, the file of the step's function.

    cloudpickle names the code it sends by value ``<dynamic-code>`` (the function's own module,
    when the workers cannot import it), so a worker's frames would not say where they are.
    Only that module goes by value, so each such frame is in ``source``, read here for its line.
    """
    shown = traceback.TracebackException(type(exc), exc, tb)
    if source:
        for te in _chain(shown):
            te.stack = traceback.StackSummary.from_list(
                [traceback.FrameSummary(source, f.lineno, f.name)
                 if f.filename == "<dynamic-code>" else f for f in te.stack])
    return "".join(shown.format())


def _chain(te: traceback.TracebackException) -> list[traceback.TracebackException]:
    """``te`` and the exceptions it was raised from or during (each shown once)."""
    seen: list[traceback.TracebackException] = []
    todo = [te]
    while todo:
        item = todo.pop()
        if any(item is s for s in seen):
            continue
        seen.append(item)
        todo.extend(x for x in (item.__cause__, item.__context__) if x is not None)
    return seen


def _log_lines(log: LogSink, text: str) -> None:
    for line in text.rstrip("\n").split("\n"):
        log("stderr", line)


class DaskExecutor:
    """Runs python steps (``call:`` or ``run:``) as tasks on a Dask cluster; see the module."""

    step_keys: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, address: str | None = None, *, processes: bool | None = None,
                 connect_timeout: float = 10.0) -> None:
        self.address = address
        self.processes = processes
        self.connect_timeout = connect_timeout
        self._client: Any = None
        self._cluster: Any = None
        self._lock = asyncio.Lock()
        self._sinks: dict[str, LogSink] = {}

    # -- the cluster ----------------------------------------------------------------------

    async def client(self, env: Any = None) -> Any:
        """The run's client, connected on first use."""
        async with self._lock:
            if self._client is None:
                self._client = await self._connect(dict(env or os.environ))
                self._client.subscribe_topic(_TOPIC, self._on_log)
        return self._client

    async def _connect(self, env: dict[str, str]) -> Any:
        from distributed import Client, LocalCluster

        address = self.address or env.get(ADDRESS_VAR)
        if address:
            return await Client(  # type: ignore[no-untyped-call]
                address, asynchronous=True, timeout=self.connect_timeout)
        processes = self.processes
        if processes is None:
            processes = env.get(PROCESSES_VAR, "").lower() in ("1", "true", "yes")
        # No dashboard, and its HTTP server (still started) on a free port, not on 8787.
        self._cluster = await LocalCluster(  # type: ignore[no-untyped-call]
            processes=processes, dashboard_address=None, asynchronous=True,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        if not processes:  # its workers log in this process
            logging.getLogger("distributed.worker").addFilter(_task_failures)
        return await Client(self._cluster, asynchronous=True)  # type: ignore[no-untyped-call]

    def _on_log(self, event: tuple[float, Any]) -> None:
        tag, stream, line = event[1]
        sink = self._sinks.get(tag)
        if sink is not None:
            sink(stream, line)

    async def finish_run(self, outputs: dict[str, Any]) -> None:
        """Fetch the values of this run's futures, then close the client (and the cluster)."""
        if self._client is None:
            return
        from distributed import Future

        for name, value in list(outputs.items()):
            if isinstance(value, Future) and value.client is self._client:
                try:
                    outputs[name] = await value
                except Exception:  # a cancelled or failed future has no value to keep
                    del outputs[name]
        client, cluster, self._client, self._cluster = self._client, self._cluster, None, None
        with contextlib.suppress(Exception):
            client.unsubscribe_topic(_TOPIC)
        await client.close()
        if cluster is not None:
            await cluster.close()
            logging.getLogger("distributed.worker").removeFilter(_task_failures)

    # -- one step -------------------------------------------------------------------------

    async def execute(self, step: Step, ctx: StepContext) -> Result:
        if step.call and step.run:
            return _refuse(ctx, "a python step takes either 'run:' or 'call:', not both")
        if not step.call and not step.run:
            return _refuse(ctx, "a dask step needs 'call: module:function' or 'run: script.py'")
        submitted = self._prepare(step, ctx)
        if isinstance(submitted, Result):
            return submitted
        func, args, source = submitted
        client = await self.client(ctx.env)
        tag = f"chronum-{ctx.run_id}-{step.name}-{ctx.attempt}"
        self._sinks[tag] = ctx.log
        try:
            future = client.submit(func, *args, tag, key=tag, pure=False)
            try:
                await _wait(future)
            except asyncio.CancelledError:
                await _uninterrupted(client.cancel([future], force=True))
                raise
            return await self._outcome(step, ctx, future, source)
        finally:
            self._sinks.pop(tag, None)

    def _prepare(self, step: Step, ctx: StepContext
                 ) -> tuple[Callable[..., Any], list[Any], str | None] | Result:
        """The task and its arguments, and for a call the file of the function's code."""
        from .python import _bind, _CallError, _resolve, call_plan

        if step.call:
            try:
                func = _resolve(step.call, ctx)
                args, kwargs = _bind(call_plan(func), ctx, where="a dask worker")
                payload = _pickle(func)
            except _CallError as exc:
                return _refuse(ctx, f"{step.call}: {exc}")
            except Exception as exc:  # cloudpickle could not pickle it (a lock, a socket ...)
                return _refuse(ctx, f"{step.call}: cannot send the function to the cluster: "
                                    f"{type(exc).__name__}: {exc}")
            code = getattr(func, "__code__", None)
            return _call_task, [payload, args, kwargs], getattr(code, "co_filename", None)
        assert step.run is not None
        try:
            argv = shlex.split(step.run)
        except ValueError as exc:
            return _refuse(ctx, f"cannot parse run: {step.run!r}: {exc}", code=2)
        script = (ctx.flow.base_dir / argv[0]).resolve()
        if not script.is_file():
            return _refuse(ctx, f"python script not found: {script}", code=2)
        return _script_task, [[str(script), *argv[1:]], dict(ctx.env), str(Path(ctx.cwd)),
                              ctx.grace], None

    async def _outcome(self, step: Step, ctx: StepContext, future: Any,
                       source: str | None = None) -> Result:
        if future.status == "error":
            exc = await future.exception()
            tb = await future.traceback()
            tb = tb.tb_next if tb is not None else None  # the first frame is _call_task's
            _log_lines(ctx.log, _traceback_text(exc, tb, source))
            text = str(exc).strip().splitlines()
            summary = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
            return Result(1, error=summary)
        if future.status != "finished":
            message = f"the task was {future.status} on the cluster"
            ctx.log("stderr", f"chronum: {message}")
            return Result(1, error=message)
        if step.call:
            return Result(0, value=future)
        code = int(await future)
        return Result(code, error=None if code == 0 else describe_exit(code))


async def _wait(future: Any) -> None:
    from distributed import wait

    await wait([future])  # type: ignore[no-untyped-call]


async def _uninterrupted(awaitable: Any) -> None:
    task = asyncio.ensure_future(awaitable)
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
    if not task.cancelled():
        task.exception()


def _refuse(ctx: StepContext, message: str, code: int = 2) -> Result:
    ctx.log("stderr", f"chronum: {message}")
    return Result(code, error=message)
