"""Flows written in Python: ``chronum.Flow``, ``@flow.step()``, ``flow.shell``, ``flow.script``.

    flow = chronum.Flow("etl", max_parallel=2)

    @flow.step()
    def load() -> pd.DataFrame: ...

    @flow.step(retry=2)
    def clean(load: pd.DataFrame) -> pd.DataFrame: ...   # needs 'load': its parameter

    run = flow.run()            # or: await flow.arun() in a notebook

The flow is checked by the same validator as YAML (problems reported at the decorator's line),
runs on the same engine, and ``flow.to_yaml()`` writes the equivalent YAML. ``chronum run
pipeline.py`` loads a file that defines one ``Flow`` through the ``.py`` parser.
"""

from __future__ import annotations

from ..render.dot import Graph
from ._flow import Flow, call_target

__all__ = ["Flow", "Graph", "call_target"]
