"""``flow.to_yaml()`` of a flow whose steps are notebook functions, and a background handle
shown again (one line, not a second live view)."""

from __future__ import annotations

from .conftest import text_of

YAML = """\
name: nbflow
steps:
- name: load
  executor: python
  call: load
- name: total
  executor: python
  call: total
  needs:
  - load
"""


def test_to_yaml_writes_notebook_functions_by_name_and_loads_in_the_kernel(notebook):
    nb = notebook([
        "%load_ext chronum",
        "import chronum\nflow = chronum.Flow('nbflow')\n\n@flow.step()\ndef load():\n"
        "    return [1, 2, 3]\n\n@flow.step()\ndef total(load):\n    return sum(load)\n",
        "print(flow.to_yaml(), end='')",
        "%%chronum\n" + YAML,
        "print(_.status, _.outputs['total'])",
    ])
    assert text_of(nb.cells[2]) == YAML
    assert text_of(nb.cells[4]) == "succeeded 6\n"


def test_a_background_handle_shown_again_is_one_line(notebook):
    nb = notebook([
        "%load_ext chronum",
        "%%chronum bg --background\nsteps:\n  - name: nap\n    run: sleep 2\n",
        "handle = _\nhandle",
        "r = await handle.wait()\nprint(r.status)",
    ])
    (out,) = nb.cells[2].outputs
    assert "application/vnd.jupyter.widget-view+json" not in out.data
    assert out.data["text/plain"].endswith(
        "of bg: running, 0/1 steps done; its live view is in the cell that started it; "
        "`await handle.wait()` gives the Run")
    assert 'class="chronum-summary"' in out.data["text/html"]
    assert text_of(nb.cells[3]) == "succeeded\n"
