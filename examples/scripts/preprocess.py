"""The `preprocess` step of the deploy-api example: turns a small CSV into a summary.

Run by the python executor with the interpreter Chronum runs on; its output lands in the step's
log (`chronum logs last preprocess`). It writes build/summary.json beside the flow.
"""

import csv
import io
import json
import os
from pathlib import Path

RAW = """city,temperature_c
Lisbon,21.5
Oslo,7.0
Nairobi,24.1
Lima,18.3
"""

rows = list(csv.DictReader(io.StringIO(RAW)))
temps = [float(r["temperature_c"]) for r in rows]
summary = {
    "rows": len(rows),
    "mean_temperature_c": round(sum(temps) / len(temps), 2),
    "warmest": max(rows, key=lambda r: float(r["temperature_c"]))["city"],
    "run_id": os.environ.get("CHRONUM_RUN_ID"),
}
out = Path("build")
out.mkdir(exist_ok=True)
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(f"preprocessed {summary['rows']} rows: mean {summary['mean_temperature_c']} °C, "
      f"warmest {summary['warmest']}")
print(f"wrote {out / 'summary.json'}")
