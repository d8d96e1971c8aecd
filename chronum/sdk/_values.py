"""Step values kept for resume: on disk for ``persist`` steps, in memory for this process.

A persisted value lives in the run's folder beside the database,
``<db folder>/runs/<run id>/values/<step>.pickle`` (``.parquet`` for a DataFrame when pyarrow
is installed), written before the step's success is recorded, so a recorded success always has
its value. On resume, a kept step's value comes from this process's memory or from that folder;
when neither has it and a step that runs again takes it as a parameter, the kept step runs again
too, and the reason is recorded on its row.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import dag
from ..model import Flow, Step
from ._signature import params_of

__all__ = ["MISSING", "Restored", "keeper", "load_value", "restore", "save_value", "values_dir"]

#: What ``load_value`` returns when nothing was kept (a value may itself be None).
MISSING: Any = object()


def values_dir(db_path: Path, run_id: str) -> Path | None:
    """Where a run keeps its values; None for an in-memory database."""
    if str(db_path) in ("", ":memory:"):
        return None
    return db_path.parent / "runs" / run_id / "values"


def _is_frame(value: Any) -> bool:
    pandas = sys.modules.get("pandas")  # a DataFrame exists only if pandas was imported
    return pandas is not None and isinstance(value, pandas.DataFrame)


def _write(path: Path, write: Callable[[Path], None]) -> None:
    """Write beside, then rename: a killed process never leaves half a value."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_value(folder: Path, step: str, value: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if _is_frame(value) and importlib.util.find_spec("pyarrow") is not None:
        path = folder / f"{step}.parquet"
        try:
            _write(path, value.to_parquet)
            return path
        except Exception:  # a frame parquet cannot hold (mixed object columns): pickle it
            pass
    path = folder / f"{step}.pickle"

    def dump(target: Path) -> None:
        with open(target, "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)

    _write(path, dump)
    return path


def load_value(folder: Path, step: str) -> Any:
    """The kept value, or ``MISSING``."""
    parquet = folder / f"{step}.parquet"
    if parquet.exists():
        import pandas as pd

        return pd.read_parquet(parquet)
    try:
        with open(folder / f"{step}.pickle", "rb") as fh:
            return pickle.load(fh)
    except FileNotFoundError:
        return MISSING


def keeper(flow: Flow, db_path: Path, run_id: str) -> Callable[[str, Any], None] | None:
    """The engine's ``on_output`` hook for a flow with ``persist`` steps, else None."""
    persist = {s.name for s in flow.steps if s.options.get("persist")}
    folder = values_dir(db_path, run_id)
    if not persist or folder is None:
        return None

    def keep(name: str, value: Any) -> None:
        if name in persist:
            save_value(folder, name, value)

    return keep


@dataclass
class Restored:
    """What a resume keeps: steps (to the run that made them), their values, and the steps
    that run again because their value is gone (step -> reason)."""

    cached: dict[str, str]
    values: dict[str, Any]
    reasons: dict[str, str] = field(default_factory=dict)


def _takes(step: Step, need: str, functions: Mapping[str, Callable[..., Any]] | None) -> bool:
    """Whether ``step`` is handed ``need``'s value (unknown functions: assume it is)."""
    func = functions.get(step.name) if functions else None
    if func is None:
        return True
    params, var_keyword = params_of(func)
    return var_keyword or any(name == need for name, _ in params)


def restore(flow: Flow, cached: Mapping[str, str], recent: Mapping[str, Mapping[str, Any]],
            db_path: Path, functions: Mapping[str, Callable[..., Any]] | None) -> Restored:
    """Find the values of kept steps; a kept step whose value is gone but needed runs again."""
    by_name = {s.name: s for s in flow.steps}
    kept = dict(cached)
    values: dict[str, Any] = {}
    available: set[str] = set()
    for name, from_run in kept.items():
        if not by_name[name].call:
            available.add(name)  # only python calls have values
            continue
        outputs = recent.get(from_run)
        if outputs is not None:  # made in this process: no entry means it returned None
            available.add(name)
            if name in outputs:
                values[name] = outputs[name]
            continue
        folder = values_dir(db_path, from_run)
        value = load_value(folder, name) if folder is not None else MISSING
        if value is not MISSING:
            values[name] = value
            available.add(name)
    reasons: dict[str, str] = {}
    while True:
        gone = [(need, step.name) for step in flow.steps
                if step.name not in kept and step.call
                for need in step.needs
                if need in kept and need not in available and _takes(step, need, functions)]
        if not gone:
            break
        for need, by in gone:
            if kept.pop(need, None) is not None:
                reasons[need] = f"re-run: its value is needed by '{by}' and was not kept"
        for name in dag.downstream(flow, [n for n in by_name if n not in kept]):
            kept.pop(name, None)
    return Restored(kept, {k: v for k, v in values.items() if k in kept}, reasons)
