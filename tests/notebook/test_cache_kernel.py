"""The edit loop of issue 13 in a real kernel: run a ``%%chronum --cache`` cell, redefine one
function, run the cell again (only it and its downstream run, saying why), then once more with
nothing changed (everything is reused)."""

from __future__ import annotations

import json

from .conftest import text_of

CELL = """%%chronum pipe --cache
steps:
  - name: load
    executor: python
    call: load
  - name: clean
    executor: python
    call: clean
    needs: [load]
  - name: report
    executor: python
    call: report
    needs: [clean]
"""

FUNCTIONS = """
calls = []

def load():
    calls.append("load")
    return [3, 1, 2]

def clean(load):
    calls.append("clean")
    return sorted(load)

def report(clean):
    calls.append("report")
    return sum(clean)
"""

EDITED = """
def clean(load):
    calls.append("clean")
    return sorted(load, reverse=True)
"""

STATES = """
import json, chronum
frame = chronum.steps()
print(json.dumps({row.step: [row.status, row.reason] for row in frame.itertuples()}))
print(json.dumps(calls)); calls.clear()
"""


def _states(cell) -> tuple[dict[str, list[str]], list[str]]:
    lines = [line for line in text_of(cell).splitlines() if line.startswith(("{", "["))]
    return json.loads(lines[0]), json.loads(lines[1])


def test_the_edit_loop_reuses_load_and_reruns_what_changed(notebook) -> None:
    nb = notebook(["%load_ext chronum", FUNCTIONS, CELL, STATES, EDITED, CELL, STATES, CELL,
                   STATES, "%chronum cache list --flow pipe",
                   "%chronum cache clear --flow pipe"])
    first, calls = _states(nb.cells[3])
    assert calls == ["load", "clean", "report"]
    assert {name: state for name, (state, _) in first.items()} == {
        "load": "succeeded", "clean": "succeeded", "report": "succeeded"}

    edited, calls = _states(nb.cells[6])
    assert calls == ["clean", "report"]  # load was not called again
    assert edited["load"][0] == "cached"
    assert edited["load"][1].startswith("cached: same key as run ")
    assert edited["clean"] == ["succeeded", "definition changed"]
    assert edited["report"] == ["succeeded", "upstream clean ran"]

    again, calls = _states(nb.cells[8])
    assert calls == []
    assert {state for state, _ in again.values()} == {"cached"}
    # the cell's picture shows the cached colour and the reason in its table
    html = "".join(out.get("data", {}).get("text/html", "") for out in nb.cells[7].outputs)
    assert 'data-state="cached"' in html
    assert "cached: same key as run" in html

    listed = text_of(nb.cells[9])  # the values the cached steps kept: load, clean twice, report
    words = listed.split()
    assert (words.count("load"), words.count("clean"), words.count("report")) == (1, 2, 2), \
        listed
    assert text_of(nb.cells[10]).startswith("removed 5 kept values")
