"""The python executor: scripts in a subprocess, functions in-process with routed print()."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from executor_helpers import Log, MakeCtx

from chronum.executors import Executor, ExecutorRegistry
from chronum.executors.base import Result, StepContext
from chronum.executors.python import PythonExecutor
from chronum.model import Step

WriteModule = Callable[[str], str]


@pytest.fixture
def module(tmp_path: Path) -> WriteModule:
    """Write a module into the flow folder under a fresh name (modules are cached by name)."""

    def write(source: str) -> str:
        name = f"steps_{uuid.uuid4().hex[:12]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        return name

    return write


def call(target: str, ctx: StepContext) -> Result:
    step = Step(name="s", executor="python", call=target)
    return asyncio.run(PythonExecutor().execute(step, ctx))


def test_is_an_executor_registered_as_python() -> None:
    executor = ExecutorRegistry(entry_points=False).create("python")
    assert isinstance(executor, PythonExecutor)
    assert isinstance(executor, Executor)


# -- run: scripts ---------------------------------------------------------------------------


def test_script_runs_with_its_exit_code_and_args(log: Log, make_ctx: MakeCtx, tmp_path: Path
                                                 ) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "job.py").write_text(
        "import os, sys\nprint('args', sys.argv[1:])\nprint(os.environ['STAGE'])\n"
        "print('oops', file=sys.stderr)\nsys.exit(3)\n"
    )
    ctx = make_ctx(log, env={"STAGE": "dev"})
    step = Step(name="s", executor="python", run="scripts/job.py --n '2 3'")
    result = asyncio.run(PythonExecutor().execute(step, ctx))
    assert result.exit_code == 3
    assert log.stdout == ["args ['--n', '2 3']", "dev"]
    assert log.stderr == ["oops"]


def test_missing_script_is_2_naming_the_resolved_path(log: Log, make_ctx: MakeCtx,
                                                      tmp_path: Path) -> None:
    step = Step(name="s", executor="python", run="nope/missing.py")
    result = asyncio.run(PythonExecutor().execute(step, make_ctx(log)))
    assert result.exit_code == 2
    path = (tmp_path / "nope" / "missing.py").resolve()
    assert log.stderr == [f"chronum: python script not found: {path}"]


# -- call: functions ------------------------------------------------------------------------


def test_sync_function_value_becomes_the_result(log: Log, make_ctx: MakeCtx,
                                                module: WriteModule) -> None:
    name = module("""
        import threading
        def double(x):
            print("in", threading.current_thread() is threading.main_thread())
            return x * 2
    """)
    result = call(f"{name}:double", make_ctx(log, inputs={"x": 21}))
    assert result == Result(0, value=42)
    assert log.stdout == ["in False"]  # ran in a worker thread, not on the event loop's


def test_async_function_is_awaited(log: Log, make_ctx: MakeCtx, module: WriteModule) -> None:
    name = module("""
        import asyncio
        async def fetch(a, b=10):
            await asyncio.sleep(0)
            return [a, b]
    """)
    assert call(f"{name}:fetch", make_ctx(log, inputs={"a": 1})) == Result(0, value=[1, 10])


def test_parameters_bind_by_name_ctx_and_kwargs(log: Log, make_ctx: MakeCtx,
                                                module: WriteModule) -> None:
    name = module("""
        def f(load, /, ctx, *, scale=1, **rest):
            return load * scale, ctx.run_id, sorted(rest)
    """)
    ctx = make_ctx(log, inputs={"load": 3, "scale": 2, "other": 0, "my-step": 1})
    assert call(f"{name}:f", ctx) == Result(0, value=(6, "r1", ["my-step", "other"]))


def test_context_parameter_name(log: Log, make_ctx: MakeCtx, module: WriteModule) -> None:
    name = module("def f(context): return context.attempt\n")
    assert call(f"{name}:f", make_ctx(log)) == Result(0, value=1)


def test_missing_required_input_fails_naming_it(log: Log, make_ctx: MakeCtx,
                                               module: WriteModule) -> None:
    name = module("def f(frame, ctx): return 1\n")
    result = call(f"{name}:f", make_ctx(log, inputs={"other": 1}))
    assert result.exit_code == 1
    message = f"{name}:f: required parameter 'frame' matches no upstream step (inputs: other)"
    assert log.stderr == [f"chronum: {message}"]
    assert result.error == message


def test_exception_fails_with_summary_and_traceback(log: Log, make_ctx: MakeCtx,
                                                    module: WriteModule) -> None:
    name = module("""
        def inner():
            raise ValueError("boom\\nsecond line")
        def f():
            inner()
    """)
    result = call(f"{name}:f", make_ctx(log))
    assert result.exit_code == 1
    assert result.error == "ValueError: boom"
    assert log.stderr[0] == "Traceback (most recent call last):"
    assert log.stderr[-2:] == ["ValueError: boom", "second line"]
    text = "\n".join(log.stderr)
    assert f"{name}.py" in text and "in inner" in text
    assert "_call_sync" not in text  # the executor's own frames are not shown


def test_a_sync_function_raising_keyboardinterrupt_fails_its_step(
        log: Log, make_ctx: MakeCtx, module: WriteModule) -> None:
    # Beyond Exception: the worker thread survives and the step ends instead of waiting forever.
    name = module("def f():\n    raise KeyboardInterrupt\n")
    for _ in range(2):  # the same worker threads serve the next call
        result = call(f"{name}:f", make_ctx(log))
        assert result.exit_code == 1 and result.error == "KeyboardInterrupt"


def test_async_exception_traceback_starts_in_user_code(log: Log, make_ctx: MakeCtx,
                                                        module: WriteModule) -> None:
    name = module("async def f():\n    raise KeyError('k')\n")
    result = call(f"{name}:f", make_ctx(log))
    assert (result.exit_code, result.error) == (1, "KeyError: 'k'")
    assert "_await" not in "\n".join(log.stderr)
    assert log.stderr[-1] == "KeyError: 'k'"


@pytest.mark.parametrize(
    ("source", "code", "error"),
    [("import sys\ndef f(): sys.exit(4)\n", 4, "sys.exit(4)"),
     ("import sys\ndef f(): sys.exit()\n", 0, None),
     ("import sys\ndef f(): sys.exit('bad input')\n", 1, "bad input")],
    ids=["code", "none", "message"],
)
def test_sys_exit_in_a_function_sets_the_exit_code(
    source: str, code: int, error: str | None, log: Log, make_ctx: MakeCtx, module: WriteModule
) -> None:
    result = call(f"{module(source)}:f", make_ctx(log))
    assert (result.exit_code, result.error) == (code, error)


@pytest.mark.parametrize(
    ("target", "message"),
    [("no_such_module_xyz:f", "no_such_module_xyz:f: cannot import module 'no_such_module_xyz': "
      "ModuleNotFoundError: No module named 'no_such_module_xyz'"),
     ("{mod}:missing", "{mod}:missing: module '{mod}' has no attribute 'missing'"),
     ("{mod}:VALUE", "{mod}:VALUE: call: '{mod}:VALUE' is not callable (it is a int)"),
     ("{mod}:", "{mod}:: call: '{mod}:' should be 'module:function'")],
    ids=["no-module", "no-attribute", "not-callable", "no-function"],
)
def test_bad_targets_fail_with_a_clear_message(
    target: str, message: str, log: Log, make_ctx: MakeCtx, module: WriteModule
) -> None:
    mod = module("VALUE = 3\n")
    result = call(target.format(mod=mod), make_ctx(log))
    assert result.exit_code == 1
    assert log.stderr == [f"chronum: {message.format(mod=mod)}"]


def test_error_while_importing_shows_where(log: Log, make_ctx: MakeCtx, module: WriteModule
                                           ) -> None:
    mod = module("x = 1 / 0\ndef f(): pass\n")
    result = call(f"{mod}:f", make_ctx(log))
    assert result.exit_code == 1
    assert f"{mod}.py" in "\n".join(log.stderr)
    assert log.stderr[-1] == (f"chronum: {mod}:f: cannot import module '{mod}': "
                              "ZeroDivisionError: division by zero")


def test_bare_name_comes_from_the_notebook_namespace(log: Log, make_ctx: MakeCtx) -> None:
    def clean(raw: list[int]) -> list[int]:
        print("cleaning")
        return [x for x in raw if x]

    ctx = make_ctx(log, inputs={"raw": [0, 1, 2]}, extras={"namespace": {"clean": clean}})
    assert call("clean", ctx) == Result(0, value=[1, 2])
    assert log.stdout == ["cleaning"]
    missing = call("absent", make_ctx(log, extras={"namespace": {}}))
    assert missing.error == "absent: function 'absent' is not defined in the notebook namespace"


def test_dotted_attribute_path(log: Log, make_ctx: MakeCtx, module: WriteModule) -> None:
    mod = module("class Jobs:\n    @staticmethod\n    def go(): return 'went'\n")
    assert call(f"{mod}:Jobs.go", make_ctx(log)) == Result(0, value="went")


# -- output routing -------------------------------------------------------------------------


def test_print_goes_to_the_calling_step_when_sync_calls_overlap(
    make_ctx: MakeCtx, module: WriteModule
) -> None:
    # Both functions are inside their body at the same time (the barrier), each printing
    # around it: a line in the wrong sink would mean routing by thread or by "last step".
    mod = module("""
        import sys, threading
        barrier = threading.Barrier(2, timeout=10)
        def talk(who):
            print(who, "before")
            barrier.wait()
            print(who, "after", end="")
            print(who, "error", file=sys.stderr)
            return who
    """)
    logs = {"a": Log(), "b": Log()}

    async def both() -> list[Result]:
        ex = PythonExecutor()
        steps = [
            ex.execute(Step(name=w, executor="python", call=f"{mod}:talk"),
                       make_ctx(logs[w], inputs={"who": w}))
            for w in ("a", "b")
        ]
        return list(await asyncio.gather(*steps))

    assert asyncio.run(both()) == [Result(0, value="a"), Result(0, value="b")]
    for who, log in logs.items():
        assert log.stdout == [f"{who} before", f"{who} after"]
        assert log.stderr == [f"{who} error"]


def test_print_goes_to_the_calling_step_when_async_calls_overlap(
    make_ctx: MakeCtx, module: WriteModule
) -> None:
    mod = module("""
        import asyncio
        async def talk(who, ctx):
            for i in range(3):
                print(who, i)
                await asyncio.sleep(0)
            async def child():
                print(who, "from a task")
            await asyncio.create_task(child())
    """)
    logs = {"a": Log(), "b": Log()}

    async def both() -> None:
        ex = PythonExecutor()
        await asyncio.gather(*(
            ex.execute(Step(name=w, executor="python", call=f"{mod}:talk"),
                       make_ctx(logs[w], inputs={"who": w}))
            for w in ("a", "b")
        ))

    asyncio.run(both())
    for who, log in logs.items():
        assert log.stdout == [f"{who} 0", f"{who} 1", f"{who} 2", f"{who} from a task"]


def test_print_outside_a_step_reaches_the_real_stdout(
    log: Log, make_ctx: MakeCtx, capsys: pytest.CaptureFixture[str]
) -> None:
    call("hello", make_ctx(log, extras={"namespace": {"hello": lambda: print("inside")}}))
    print("outside")
    sys.stdout.flush()
    assert log.stdout == ["inside"]
    assert capsys.readouterr().out == "outside\n"


# -- cancellation ---------------------------------------------------------------------------


def test_cancelling_an_async_function_cancels_it(log: Log, make_ctx: MakeCtx) -> None:
    seen: list[str] = []

    async def forever() -> None:
        try:
            print("waiting")
            await asyncio.Event().wait()
        finally:
            seen.append("cleaned up")

    async def scenario() -> None:
        started = log.when("waiting")
        ctx = make_ctx(log, extras={"namespace": {"forever": forever}})
        task = asyncio.create_task(
            PythonExecutor().execute(Step(name="s", executor="python", call="forever"), ctx))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert seen == ["cleaned up"]


def test_cancelling_a_sync_function_returns_at_once_and_abandons_the_thread(
    log: Log, make_ctx: MakeCtx
) -> None:
    entered, release, done = threading.Event(), threading.Event(), threading.Event()
    finished: list[Any] = []

    def blocking() -> str:
        print("started")
        entered.set()
        release.wait(10)
        print("after cancel")  # dropped: the step is over
        finished.append(True)
        done.set()
        return "late"

    async def scenario() -> None:
        ctx = make_ctx(log, extras={"namespace": {"blocking": blocking}})
        task = asyncio.create_task(
            PythonExecutor().execute(Step(name="s", executor="python", call="blocking"), ctx))
        await asyncio.to_thread(entered.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not finished  # the executor did not wait for the thread
        release.set()

    asyncio.run(scenario())
    assert done.wait(10)  # the abandoned thread ran to its end, its output dropped
    assert finished == [True]
    assert log.stdout == ["started"]
    assert log.stderr == ["chronum: blocking cancelled; Python cannot stop its thread, which "
                          "keeps running in the background (check ctx.cancelled or call "
                          "ctx.check() in it, or use isolate: process)"]
