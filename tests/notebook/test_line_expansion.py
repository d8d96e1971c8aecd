"""The magic behaves like IPython's others: ``$var``/``{var}`` in its line, real help,
``%config ChronumMagics`` settings, and ``logging`` inside a step reaching the step's log."""

from __future__ import annotations

import json

import pytest

from .conftest import KERNEL, text_of

PARAM_FLOW = """\
params: {{day: none, region: none}}
steps:
  - name: show
    executor: python
    call: show
"""
SHOW = "def show(ctx):\n    return f\"{ctx.params['day']} {ctx.params['region']}\"\n"


def test_dollar_and_brace_variables_expand_from_the_notebook(notebook):
    nb = notebook([
        "%load_ext chronum", SHOW, "DAY = '2026-11-29'\nregion = 'eu'",
        "%%chronum -p day=$DAY -p region={region}\n" + PARAM_FLOW.format(),
        "print(_.outputs['show'])",
        "%%chronum -p day={DAY.replace('-', '')} -p region=$$HOME\n" + PARAM_FLOW.format(),
        "print(_.outputs['show'])",
    ])
    assert text_of(nb.cells[4]) == "2026-11-29 eu\n"
    assert text_of(nb.cells[6]) == "20261129 $HOME\n"  # $$ is a literal $, as in IPython


def test_papermill_parameters_reach_the_flow(kernel_path, tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    import nbformat

    monkeypatch.setenv("JUPYTER_PATH", str(kernel_path))
    monkeypatch.delenv("CHRONUM_DB", raising=False)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in [
        "DAY = 'today'\nregion = 'nowhere'", "%load_ext chronum", SHOW,
        "%%chronum -p day={DAY} -p region={region}\n" + PARAM_FLOW.format(),
        "print(_.outputs['show'])"]]
    nb.cells[0].metadata["tags"] = ["parameters"]
    source, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, source)
    papermill.execute_notebook(str(source), str(out), kernel_name=KERNEL, cwd=str(tmp_path),
                               parameters={"DAY": "2026-11-29", "region": "us-west"},
                               language="python", progress_bar=False)
    done = nbformat.read(out, as_version=4)
    assert text_of(done.cells[-1]) == "2026-11-29 us-west\n"


def test_help_for_the_cell_and_the_line_magic(notebook):
    nb = notebook([
        "%load_ext chronum",
        "%%chronum --help\nsteps: []\n",
        "%chronum --help",
        "ip = get_ipython()\nprint(ip.find_cell_magic('chronum').__doc__ == "
        "ip.find_line_magic('chronum').__doc__)\n"
        "print('--background' in ip.find_cell_magic('chronum').__doc__, "
        "'compare RUN_A' in ip.find_line_magic('chronum').__doc__)",
    ])
    cell_help = text_of(nb.cells[1])
    assert cell_help.startswith("%%chronum [NAME] [OPTIONS]: run the cell's YAML as a flow")
    assert "--dry-run" in cell_help and "%chronum --help" in cell_help
    assert text_of(nb.cells[2]).startswith("%chronum COMMAND [ARGS] [--db PATH]")
    assert text_of(nb.cells[3]) == "False\nTrue True\n"


def test_config_sets_the_default_database_parallelism_and_the_timeline(notebook, tmp_path):
    nb = notebook([
        "%load_ext chronum",
        "%config ChronumMagics.db = 'configured.db'\n"
        "%config ChronumMagics.max_parallel = 3\n"
        "%config ChronumMagics.timeline = True\n"
        "%config ChronumMagics.show_after = -1",
        "%%chronum cfg\nsteps:\n  - name: a\n    run: echo a\n",
        "import chronum\nev = chronum.events(db='configured.db')\n"
        "print(ev['data'][0]['max_parallel'], len(chronum.history(db='configured.db')))",
        "%config ChronumMagics.max_parallel = 0",
    ], allow_errors=True)
    assert "chronum-timeline" in nb.cells[2].outputs[0].data["text/html"]
    assert text_of(nb.cells[3]) == "3 1\n"
    assert "max_parallel must be at least 1, got 0" in json.dumps(nb.cells[4].outputs)
    assert (tmp_path / "configured.db").exists()


def test_logging_inside_a_python_step_reaches_its_log(notebook):
    nb = notebook([
        "%load_ext chronum",
        "import logging\nlog = logging.getLogger('etl')\n"
        "def work():\n    log.warning('rows dropped: %d', 3)\n    return 1\n",
        "%%chronum lg\nsteps:\n  - name: work\n    executor: python\n    call: work\n",
        "%chronum logs last work",
    ])
    assert "rows dropped" not in text_of(nb.cells[2])  # not in the cell's own output
    assert "WARNING:etl:rows dropped: 3" in text_of(nb.cells[3])


def test_compare_and_history_line_commands_take_variables(notebook):
    flow = "%%chronum cmp\nsteps:\n  - name: a\n    run: {run}\n"
    nb = notebook([
        "%load_ext chronum",
        flow.format(run="echo ok"),
        "first = _.run_id",
        flow.format(run="exit 2"),
        "%chronum compare {first} last",
        "%chronum history --status failed",
    ])
    table = nb.cells[4].outputs[0].data["text/plain"]
    assert "succeeded" in table and "failed" in table and "True" in table
    history = nb.cells[5].outputs[0].data["text/plain"]
    assert "failed" in history and "succeeded" not in history
