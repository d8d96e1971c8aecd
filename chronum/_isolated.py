"""A ``call:`` step with ``isolate: process``: the function runs in a child process.

Python cannot stop a thread, but the engine stops a process like a shell step's: its whole
tree, on cancel and timeout, and the supervisor does it when the runner itself is killed. So a
step that must be stoppable, and whose function is not async, runs here.

The parent (``executors/python.py``) writes the function and its arguments with cloudpickle
(a notebook function travels by value) to a file; this module, run in a child interpreter
(``python -c ... IN OUT``), calls it and writes the outcome to ``OUT``. Its ``print``,
``logging`` and whatever its own children write reach the step's log through the pipes the
parent reads, like a script's.
cloudpickle is imported only here and by the parent when such a step runs. The module sits at
the bottom of the package, importing nothing of Chronum's, so the child pays only for Python,
cloudpickle and the function's own imports.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ChildContext", "main"]


@dataclass
class ChildContext:
    """What a function taking ``ctx`` gets in the child: the step context's plain values.

    ``cancelled`` is always False here: a cancelled child is stopped, not asked to stop."""

    run_id: str
    attempt: int
    env: Mapping[str, str]
    cwd: Path
    params: Mapping[str, str]
    inputs: Mapping[str, Any] = field(default_factory=dict)
    grace: float = 5.0

    @property
    def cancelled(self) -> bool:
        return False

    def check(self) -> None:
        """Nothing to check: cancel stops this process."""

    def log(self, stream: str, line: str) -> None:
        print(line, file=sys.stderr if stream == "stderr" else sys.stdout, flush=True)


def _summary(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def main(argv: list[str]) -> int:
    import pickle

    source, target = Path(argv[0]), Path(argv[1])
    with open(source, "rb") as fh:
        # The parent's sys.path first (the child starts without ``site``, which is most of
        # an interpreter's start): its modules, cloudpickle included, import here too.
        path = pickle.load(fh)
        sys.path[:0] = [p for p in path if p not in sys.path]
        import cloudpickle  # type: ignore[import-untyped]

        func, args, kwargs = cloudpickle.load(fh)
    os.unlink(source)
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, ChildContext):  # its env is this process's: never on disk
            arg.env = dict(os.environ)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s:%(name)s:%(message)s")
    try:
        value = func(*args, **kwargs)
        if inspect.isawaitable(value):
            import asyncio

            value = asyncio.run(_awaited(value))
    except SystemExit as exc:
        outcome: tuple[str, Any] = ("exit", exc.code)
    except BaseException as exc:
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
        outcome = ("error", _summary(exc))
    else:
        outcome = ("ok", value)
    sys.stdout.flush()
    sys.stderr.flush()
    import cloudpickle

    try:
        data = cloudpickle.dumps(outcome)
    except Exception as exc:
        data = cloudpickle.dumps(("error", "cannot send the return value back to the runner: "
                                  + _summary(exc)))
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return 0


async def _awaited(value: Any) -> Any:
    return await value


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
