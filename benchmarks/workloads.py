"""The benchmark flows (issue #2, "Performance"), written as YAML text into a scratch folder.

The YAML is built by hand rather than with a YAML library so that generating a 10,000-step flow
costs nothing measurable and the runner needs nothing beyond the standard library. Strings go
through ``json.dumps``: JSON strings are valid YAML, and ``"true"`` must stay a string (bare
``true`` is a YAML boolean).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SIZES", "Sizes", "shape", "write_flow", "write_noop_module"]

NOOP_MODULE = "noop"
NOOP_SOURCE = '"""In-process no-op for Chronum benchmarks."""\n\n\ndef noop():\n    return None\n'


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


def write_noop_module(folder: Path) -> None:
    """``noop.py`` beside the flows: the python executor puts the flow's folder on sys.path."""
    (folder / f"{NOOP_MODULE}.py").write_text(NOOP_SOURCE, encoding="utf-8")


def _noop(name: str, needs: list[str] | None = None) -> str:
    text = f"  - name: {name}\n    executor: python\n    call: {NOOP_MODULE}:noop\n"
    if needs:
        text += f"    needs: [{', '.join(needs)}]\n"
    return text


def _shell(name: str, command: str) -> str:
    return f"  - name: {name}\n    run: {json.dumps(command)}\n"


def _flow(name: str, steps: list[str]) -> str:
    return f"name: {name}\nmaxParallel: 2\nsteps:\n" + "".join(steps)


def one_step() -> str:
    """W0: the fixed cost of a run (startup, load, store, shutdown)."""
    return _flow("w0-one-step", [_noop("only")])


def fan_in(n: int) -> str:
    """W1: ``n`` independent no-ops, then one step needing all of them."""
    names = [f"s{i}" for i in range(n)]
    return _flow("w1-fan-in", [_noop(s) for s in names] + [_noop("join", names)])


def chain(n: int) -> str:
    """W2: a chain; every step waits for the one before, so parallelism never helps."""
    steps = [_noop("s0")] + [_noop(f"s{i}", [f"s{i - 1}"]) for i in range(1, n)]
    return _flow("w2-chain", steps)


def shell_true(n: int) -> str:
    """W3: ``n`` independent shell steps running ``true``: the cost per process spawned."""
    return _flow("w3-shell", [_shell(f"s{i}", "true") for i in range(n)])


def layers(depth: int, width: int) -> str:
    """W4: ``depth`` layers of ``width`` no-ops; each step needs every step of the layer before."""
    steps: list[str] = []
    previous: list[str] = []
    for layer in range(depth):
        current = [f"l{layer}_{i}" for i in range(width)]
        steps += [_noop(s, previous) for s in current]
        previous = current
    return _flow("w4-layers", steps)


def independent(n: int) -> str:
    """The memory workload: ``n`` independent no-ops."""
    return _flow("memory", [_noop(f"s{i}") for i in range(n)])


def shape(text: str) -> tuple[int, int]:
    """(steps, dependency edges) of a flow written by this module, for checking ``floor.py``."""
    lines = text.splitlines()
    steps = sum(line.startswith("  - name: ") for line in lines)
    edges = sum(len(line.split("[", 1)[1].split(",")) for line in lines
                if line.startswith("    needs: ["))
    return steps, edges


def write_flow(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path
