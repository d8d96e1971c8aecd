"""Step values kept on disk for ``persist: true`` steps, so a resume in another process has them.

A persisted value lives in the run's folder beside the database,
``<db folder>/runs/<run id>/values/<step>.pickle`` (``.parquet`` for a DataFrame when pyarrow
is installed), written before the step's success is recorded, so a recorded success always has
its value. Which kept step needs its value back on resume is ``chronum.engine.plan``'s decision.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..model import Flow

__all__ = ["MISSING", "keeper", "load_value", "save_value", "values_dir"]

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


def keeper(flow: Flow, db_path: Path, run_id: str, also: Iterable[str] = ()
           ) -> Callable[[str, Any], None] | None:
    """The engine's ``on_output`` hook for a flow with ``persist`` steps (and the steps
    ``also`` names: cached python steps), else None."""
    persist = {s.name for s in flow.steps if s.options.get("persist")} | set(also)
    folder = values_dir(db_path, run_id)
    if not persist or folder is None:
        return None

    cached = set(also)

    def keep(name: str, value: Any) -> None:
        # a cached step that returned None has nothing to keep: the store notes the None
        if name in persist and not (value is None and name in cached):
            save_value(folder, name, value)

    return keep
