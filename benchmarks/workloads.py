"""The benchmark workloads (issue #2, "Performance"): one shape each, written for every runner.

A ``Workload`` is the one description of a benchmark DAG: its steps in file order, each step's
needs, and what every step does (the in-process no-op, or a shell command). ``flow_yaml`` turns
it into a Chronum flow and ``dodo_py`` into a ``dodo.py`` for doit, so both runners always see
the same steps, the same edges and the same parallelism.

The YAML is built by hand rather than with a YAML library so that generating a 10,000-step flow
costs nothing measurable and the runner needs nothing beyond the standard library. Strings go
through ``json.dumps``: JSON strings are valid YAML, and ``"true"`` must stay a string (bare
``true`` is a YAML boolean).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SIZES",
    "Sizes",
    "Step",
    "Workload",
    "dodo_py",
    "flow_yaml",
    "shape",
    "write_dodo",
    "write_flow",
    "write_noop_module",
]

NOOP_MODULE = "noop"
NOOP_SOURCE = '"""In-process no-op for Chronum benchmarks."""\n\n\ndef noop():\n    return None\n'
PARALLEL = 2


@dataclass(frozen=True)
class Sizes:
    """How big each workload is; ``--quick`` uses the small set."""

    w1_fan: int
    w2_chain: int
    w3_shell: int
    w4_layers: int
    w4_width: int
    memory_steps: int
    recorded_steps: int


SIZES = {
    "full": Sizes(1_000, 300, 300, 10, 50, 10_000, 100_000),
    "quick": Sizes(100, 50, 30, 3, 10, 1_000, 10_000),
}


@dataclass(frozen=True)
class Step:
    """One step: its name, the steps it needs, and a shell command (``None``: the no-op)."""

    name: str
    needs: tuple[str, ...] = ()
    command: str | None = None


@dataclass(frozen=True)
class Workload:
    """A benchmark DAG, steps in file order (every step after the steps it needs)."""

    name: str
    steps: tuple[Step, ...]
    max_parallel: int = PARALLEL

    @property
    def counts(self) -> tuple[int, int]:
        """(steps, dependency edges): what ``floor.py --shape`` must print for the same DAG."""
        return len(self.steps), sum(len(s.needs) for s in self.steps)


def _noops(names: list[str], needs: tuple[str, ...] = ()) -> list[Step]:
    return [Step(name, needs) for name in names]


def one_step() -> Workload:
    """W0: the fixed cost of a run (startup, load, store, shutdown)."""
    return Workload("w0-one-step", (Step("only"),))


def fan_in(n: int) -> Workload:
    """W1: ``n`` independent no-ops, then one step needing all of them."""
    names = [f"s{i}" for i in range(n)]
    return Workload("w1-fan-in", (*_noops(names), Step("join", tuple(names))))


def chain(n: int) -> Workload:
    """W2: a chain; every step waits for the one before, so parallelism never helps."""
    steps = [Step("s0")] + [Step(f"s{i}", (f"s{i - 1}",)) for i in range(1, n)]
    return Workload("w2-chain", tuple(steps))


def shell_true(n: int) -> Workload:
    """W3: ``n`` independent shell steps running ``true``: the cost per process spawned."""
    return Workload("w3-shell", tuple(Step(f"s{i}", command="true") for i in range(n)))


def layers(depth: int, width: int) -> Workload:
    """W4: ``depth`` layers of ``width`` no-ops; each step needs every step of the layer before."""
    steps: list[Step] = []
    previous: tuple[str, ...] = ()
    for layer in range(depth):
        current = [f"l{layer}_{i}" for i in range(width)]
        steps += _noops(current, previous)
        previous = tuple(current)
    return Workload("w4-layers", tuple(steps))


def independent(n: int) -> Workload:
    """The memory workload: ``n`` independent no-ops."""
    return Workload("memory", tuple(_noops([f"s{i}" for i in range(n)])))


# -- Chronum's flow -------------------------------------------------------------------------


def _yaml_step(step: Step) -> str:
    text = f"  - name: {step.name}\n"
    if step.command is not None:
        text += f"    run: {json.dumps(step.command)}\n"
    else:
        text += f"    executor: python\n    call: {NOOP_MODULE}:noop\n"
    if step.needs:
        text += f"    needs: [{', '.join(step.needs)}]\n"
    return text


def flow_yaml(workload: Workload) -> str:
    """The Chronum flow: python steps call ``noop:noop`` (see ``write_noop_module``)."""
    return (f"name: {workload.name}\nmaxParallel: {workload.max_parallel}\nsteps:\n"
            + "".join(_yaml_step(s) for s in workload.steps))


def shape(text: str) -> tuple[int, int]:
    """(steps, dependency edges) read back from a flow written by ``flow_yaml``."""
    lines = text.splitlines()
    steps = sum(line.startswith("  - name: ") for line in lines)
    edges = sum(len(line.split("[", 1)[1].split(",")) for line in lines
                if line.startswith("    needs: ["))
    return steps, edges


# -- doit's dodo.py -------------------------------------------------------------------------

_DODO = '''\
"""doit's twin of the Chronum benchmark flow {name!r}, written by benchmarks/workloads.py."""


def noop():
    return None


# (name, task_dep, shell command or None for the no-op), in the flow's order.
STEPS = {steps}


def task_steps():
    for name, needs, command in STEPS:
        yield {{
            "basename": name,
            "actions": [noop if command is None else command],
            "task_dep": list(needs),
        }}
'''


def dodo_py(workload: Workload) -> str:
    """A ``dodo.py`` with one doit task per step, named as the step, ``task_dep`` its needs.

    A no-op step's action is a Python function returning ``None`` (doit's success), run in
    doit's process like Chronum's ``call:``; a shell step's is the command string, which doit
    runs through ``/bin/sh -c`` as Chronum's shell executor does. The parallelism is not in the
    file: doit takes it on the command line (``-n``, see ``run.py``).
    """
    rows = ",\n    ".join(repr((s.name, s.needs, s.command)) for s in workload.steps)
    return _DODO.format(name=workload.name, steps=f"[\n    {rows},\n]")


# -- files ----------------------------------------------------------------------------------


def write_noop_module(folder: Path) -> None:
    """``noop.py`` beside the flows: the python executor puts the flow's folder on sys.path."""
    (folder / f"{NOOP_MODULE}.py").write_text(NOOP_SOURCE, encoding="utf-8")


def write_flow(folder: Path, name: str, workload: Workload) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(flow_yaml(workload), encoding="utf-8")
    return path


def write_dodo(folder: Path, name: str, workload: Workload) -> Path:
    """``<name>/dodo.py``: a folder each, since doit runs in the folder of its dodo file."""
    path = folder / name / "dodo.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dodo_py(workload), encoding="utf-8")
    return path
