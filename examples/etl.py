"""A pandas ETL flow written in Python: ``chronum run examples/etl.py``.

``load`` -> ``clean`` -> ``summary`` pass DataFrames by parameter name; ``clean`` is kept on
disk (``persist=True``), so ``chronum resume last`` in a new process reloads it instead of
cleaning again. ``flow.to_yaml()`` prints the same flow as YAML (``call: etl:load`` ...).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import chronum

if TYPE_CHECKING:
    import pandas as pd

RAW = """city,temperature_c,day
Lisbon,21.5,mon
Oslo,7.0,mon
Nairobi,24.1,mon
Lima,,mon
Lisbon,22.0,tue
Oslo,6.5,tue
Nairobi,23.7,tue
Lima,18.3,tue
"""

flow = chronum.Flow("etl", max_parallel=2, default_retry=1, backoff={"base": 0.1})


@flow.step()
def load() -> pd.DataFrame:
    import pandas as pd  # imported when the step runs: `chronum graph` stays fast

    return pd.read_csv(io.StringIO(RAW))


@flow.step(persist=True)
def clean(load: pd.DataFrame) -> pd.DataFrame:
    frame = load.dropna(subset=["temperature_c"])
    print(f"dropped {len(load) - len(frame)} row(s) without a temperature")
    return frame


@flow.step()
def summary(clean: pd.DataFrame) -> dict[str, Any]:
    means = clean.groupby("city")["temperature_c"].mean().round(2)
    print(means.to_string())
    return {"warmest": str(means.idxmax()), "cities": int(means.size)}


flow.shell("announce", "echo summary ready", needs=[summary])


if __name__ == "__main__":
    run = flow.run()
    print(run, run.outputs["summary"])
