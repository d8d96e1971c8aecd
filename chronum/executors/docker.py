"""The ``docker`` executor: ``run:`` through ``sh -c`` inside a container, via the docker CLI.

The ``docker`` binary is found on the step's ``PATH`` and talks to whatever engine ``DOCKER_HOST``
names, so podman's docker-compatible CLI works too; no docker SDK is imported.

Each attempt is one container named ``chronum-<run>-<step>-<attempt>`` and labelled
``chronum.run=<run>``, so it can always be found; its name and the CLI's process group are
recorded with the attempt (``ctx.spawned``), so a resume after the runner died removes it. It
runs with ``--rm``; on timeout or
cancellation it is killed (``docker kill``) and removed (``docker rm -f``) before
``CancelledError`` goes on, so no container outlives its run. The docker CLI itself is not
trusted to do this: with a shell as PID 1, SIGTERM forwarded by the CLI is ignored.

A step's outputs work as in a shell step: the attempt's ``$CHRONUM_OUTPUT`` file (a host path
the container cannot see) is made empty beforehand and bind-mounted read-write at
``/chronum/output``, where the container's ``CHRONUM_OUTPUT`` points; the engine reads the
host file when the attempt ends. The file is writable by every user, as the image may run as
any uid, and stays private through the runner's own folder around it. With a remote engine
(``DOCKER_HOST=tcp://...``) the host path is on the wrong machine: outputs need a local one.

Step keys: ``image`` (required), ``pull`` (``missing`` | ``always`` | ``never``, default
``missing``), ``dockerArgs`` (a list of extra ``docker run`` arguments), ``workdir`` (where the
flow folder is mounted and the step runs, default ``/workspace``), ``mount`` (default true).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections import deque
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any, ClassVar

from ..model import Step
from .base import Result, StepContext
from .process import describe_exit, run_process

__all__ = ["CONTAINER_OUTPUT", "DEFAULT_WORKDIR", "PULL_POLICIES", "DockerExecutor",
           "container_name"]

PULL_POLICIES = ("missing", "always", "never")
DEFAULT_WORKDIR = "/workspace"
#: Where the attempt's ``$CHRONUM_OUTPUT`` file is mounted in the container.
CONTAINER_OUTPUT = "/chronum/output"
#: ``docker run`` exits 125 when the container could not be created or started at all.
_DOCKER_FAILED = 125
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")


def container_name(run_id: str, step: str, attempt: int) -> str:
    """The container of one attempt: ``chronum-<run>-<step>-<attempt>`` (docker-safe)."""
    return _NAME_UNSAFE.sub("_", f"chronum-{run_id}-{step}-{attempt}")


def container_env(step: Step, ctx: StepContext) -> dict[str, str]:
    """What the container sees: the flow's and step's env, params and ``CHRONUM_*`` variables.

    The host's own environment (``PATH``, ``HOME`` ...) is deliberately left out: it describes
    the host, not the image.
    """
    env = {k: v for k, v in ctx.env.items() if k.startswith("CHRONUM_")}
    for key in (*ctx.flow.env, *step.env, *ctx.flow.secrets, *step.secrets):
        if key in ctx.env:
            env[key] = ctx.env[key]
    return env


class _Options:
    """The docker step keys, checked; ``problem`` is set instead of raising."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.problem: str | None = None
        self.image = options.get("image")
        self.pull = options.get("pull", "missing")
        self.args = options.get("dockerArgs", [])
        self.workdir = options.get("workdir", DEFAULT_WORKDIR)
        self.mount = options.get("mount", True)
        if not isinstance(self.image, str) or not self.image:
            self.problem = "a docker step needs 'image:'"
        elif self.pull not in PULL_POLICIES:
            self.problem = f"pull: must be one of {', '.join(PULL_POLICIES)}, got {self.pull!r}"
        elif not isinstance(self.args, list) or not all(isinstance(a, str) for a in self.args):
            self.problem = "dockerArgs: must be a list of strings"
        elif not isinstance(self.workdir, str) or not self.workdir.startswith("/"):
            self.problem = f"workdir: must be an absolute container path, got {self.workdir!r}"
        elif not isinstance(self.mount, bool):
            self.problem = "mount: must be true or false"


class _StderrTail:
    """Passes lines on to the step log and keeps the last few stderr lines for the error text."""

    def __init__(self, ctx: StepContext) -> None:
        self._log = ctx.log
        self.tail: deque[str] = deque(maxlen=5)

    def __call__(self, stream: str, line: str) -> None:
        text = line.strip()
        if stream == "stderr" and text and not text.startswith("Run 'docker"):
            self.tail.append(text.removeprefix("docker: "))
        self._log(stream, line)


class DockerExecutor:
    """Runs ``run:`` in a fresh container of ``image:``; see the module docstring."""

    step_keys: ClassVar[frozenset[str]] = frozenset(
        {"image", "pull", "dockerArgs", "workdir", "mount"})

    def __init__(self, docker: str = "docker") -> None:
        self.docker = docker

    def argv(self, step: Step, ctx: StepContext, name: str) -> list[str] | str:
        """The ``docker run`` command line of one attempt, or why there is none."""
        opts = _Options(step.options)
        if opts.problem is not None:
            return opts.problem
        if not step.run:
            return "a docker step needs 'run:' (a command for sh -c in the image)"
        docker = shutil.which(self.docker, path=ctx.env.get("PATH")) or self.docker
        argv = [docker, "run", "--rm", "--name", name, "--label", f"chronum.run={ctx.run_id}",
                "--pull", opts.pull]
        # Values travel in the CLI's own environment (``-e KEY``), never on its command line;
        # the output file's container path is no secret, and differs from the host's.
        output = ctx.env.get("CHRONUM_OUTPUT")
        for key in sorted(container_env(step, ctx)):
            if key == "CHRONUM_OUTPUT" and output:
                argv += ["-e", f"CHRONUM_OUTPUT={CONTAINER_OUTPUT}",
                         "-v", f"{output}:{CONTAINER_OUTPUT}:rw"]
            else:
                argv += ["-e", key]
        workdir = PurePosixPath(opts.workdir)
        if opts.mount:
            argv += ["-v", f"{ctx.flow.base_dir.resolve()}:{workdir}"]
        if step.cwd:
            workdir = workdir / step.cwd
        argv += ["-w", str(workdir), *opts.args, opts.image, "sh", "-c", step.run]
        return argv

    async def execute(self, step: Step, ctx: StepContext) -> Result:
        name = container_name(ctx.run_id, step.name, ctx.attempt)
        argv = self.argv(step, ctx, name)
        if isinstance(argv, str):
            ctx.log("stderr", f"chronum: {argv}")
            return Result(2, error=argv)
        env = ctx.env
        problem = _output_file(env.get("CHRONUM_OUTPUT"))
        if problem is not None:
            ctx.log("stderr", f"chronum: {problem}")
            return Result(1, error=problem)
        sink = _StderrTail(ctx)
        # The CLI runs in a task of its own: on cancellation the container is killed first,
        # which ends the CLI at once, instead of waiting out a SIGTERM nobody handles.
        task = asyncio.ensure_future(
            run_process(argv, env=env, cwd=ctx.flow.base_dir, log=sink, grace=ctx.grace,
                        on_spawn=lambda pgid: ctx.spawned(pgid, container=name)))
        try:
            code = await asyncio.shield(task)
        except asyncio.CancelledError:
            await _uninterrupted(self._remove(name, env, ctx, task))
            raise
        if code == 0:
            return Result(0)
        return Result(code, error=self._explain(code, argv[0], sink))

    def _explain(self, code: int, docker: str, sink: _StderrTail) -> str:
        if code == 127 and sink.tail and sink.tail[-1].startswith("chronum: command not found"):
            return f"docker CLI not found: {docker} (is docker or podman installed?)"
        if code == _DOCKER_FAILED and sink.tail:
            # "Unable to find image ...", "Cannot connect to the Docker daemon ...": say it.
            return f"docker could not run the container: {sink.tail[-1]}"
        return describe_exit(code)

    async def _remove(self, name: str, env: Mapping[str, str], ctx: StepContext,
                      task: asyncio.Future[int]) -> None:
        """Kill and remove the container, then reap the CLI (it ends with the container)."""
        quiet = _discard
        await run_process([self.docker, "kill", name], env=env, cwd=ctx.flow.base_dir,
                          log=quiet, grace=ctx.grace)
        try:
            async with asyncio.timeout(max(ctx.grace, 1.0)):
                await asyncio.shield(task)
        except (TimeoutError, Exception):
            task.cancel()  # the CLI hangs on (an engine that went away): stop it ourselves
            with contextlib.suppress(BaseException):
                await task
        # A container that was still being created when killed is removed here.
        await run_process([self.docker, "rm", "-f", name], env=env, cwd=ctx.flow.base_dir,
                          log=quiet, grace=ctx.grace)


def _output_file(path: str | None) -> str | None:
    """Make the attempt's output file, empty and writable by the container's user, before it
    is mounted: a bind mount of a missing path would make a folder there instead."""
    if not path:
        return None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o666)  # the folder around it is the runner's own (0700)
        finally:
            os.close(fd)
    except OSError as exc:
        return f"cannot make the step's $CHRONUM_OUTPUT file: {exc.strerror or exc}"
    return None


def _discard(stream: str, line: str) -> None:
    """``docker kill``/``rm`` of a container already gone says so; that is not news."""


async def _uninterrupted(cleanup: Any) -> None:
    """Finish ``cleanup`` even if cancelled again meanwhile (a second Ctrl-C)."""
    task = asyncio.ensure_future(cleanup)
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
    if not task.cancelled():
        task.exception()  # retrieved: a failed cleanup must not hide the cancellation
