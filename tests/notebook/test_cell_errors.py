"""Errors that point at the cell: golden one-line texts, lines counted as the editor counts
them (the ``%%chronum`` line is line 1), in a real kernel."""

from __future__ import annotations

import pytest

from .conftest import text_of

DEFINE = """\
def load():
    return [3, 1, 2]

def clean(raw):
    return sorted(raw)

def clean_data(data):
    return data
"""

GOLDEN = [
    ("bad-indentation",
     "%%chronum\nsteps:\n  - name: a\n    run: echo a\n   needs: [b]\n",
     "cell:5:4: bad indentation: expected 4 spaces, found 3 (indent it as line 4 is)"),
    ("tab",
     "%%chronum\nsteps:\n  - name: a\n\trun: echo a\n",
     "cell:4:1: tabs are not allowed in YAML indentation; use spaces"),
    ("colon-in-value",
     "%%chronum\nsteps:\n  - name: a\n    run: echo a: b\n",
     "cell:4:16: a ': ' inside an unquoted value starts a mapping (put the value in quotes)"),
    ("unknown-key",
     "%%chronum\nsteps:\n  - name: a\n    run: echo a\n    timout: 3\n",
     "cell:5:5: steps[0]: unknown key 'timout' (did you mean 'timeout'?)"),
    ("notebook-function-missing",
     "%%chronum\nsteps:\n  - name: raw\n    executor: python\n    call: laod\n",
     "cell:5:5: steps[0].call: function 'laod' is not defined in the notebook "
     "(did you mean 'load'?)"),
    ("module-function-missing",
     "%%chronum\nsteps:\n  - name: raw\n    executor: python\n    call: json:lods\n",
     "cell:5:5: steps[0].call: module 'json' has no attribute 'lods' (did you mean 'loads'?)"),
    ("module-missing",
     "%%chronum\nsteps:\n  - name: raw\n    executor: python\n    call: nosuchmodule:f\n",
     "cell:5:5: steps[0].call: cannot import module 'nosuchmodule': ModuleNotFoundError: "
     "No module named 'nosuchmodule'"),
    ("upstream-not-in-needs",
     "%%chronum\nsteps:\n  - name: raw\n    executor: python\n    call: load\n"
     "  - name: tidy\n    executor: python\n    call: clean\n",
     "cell:8:5: steps[1].call: clean: parameter 'raw' takes the value of step 'raw', which is "
     "not in needs (add it: needs: [raw])"),
    ("parameter-matches-no-step",
     "%%chronum\nsteps:\n  - name: raw\n    executor: python\n    call: load\n"
     "  - name: tidy\n    executor: python\n    call: clean_data\n    needs: [raw]\n",
     "cell:8:5: steps[1].call: clean_data: parameter 'data' matches no step in needs and has "
     "no default (give it a default, or name a step in needs)"),
]


@pytest.fixture(scope="module")
def golden_nb(kernel_path, tmp_path_factory):
    """One kernel for every golden case: each case is a cell, and then its --dry-run."""
    import nbclient
    import nbformat

    cells = ["%load_ext chronum", DEFINE]
    for _id, source, _expected in GOLDEN:
        cells.append(source)
        first, _, rest = source.partition("\n")
        cells.append(f"{first} --dry-run\n{rest}")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    mp = pytest.MonkeyPatch()
    mp.setenv("JUPYTER_PATH", str(kernel_path))
    mp.delenv("CHRONUM_DB", raising=False)
    try:
        nbclient.NotebookClient(nb, kernel_name="chronum-test", timeout=120, allow_errors=True,
                                resources={"metadata": {"path": str(tmp_path_factory.mktemp(
                                    "golden"))}}).execute()
    finally:
        mp.undo()
    return nb


def _error(cell) -> tuple[str, str, list[str]]:
    """The cell's error: an error output, or IPython's one-line UsageError (a stderr line)."""
    errors = [o for o in cell.outputs if o.output_type == "error"]
    if errors:
        (error,) = errors
        return error.ename, error.evalue, error.traceback
    stderr = "".join(o.text for o in cell.outputs
                     if o.output_type == "stream" and o.name == "stderr")
    usage = stderr.rstrip("\n")
    assert usage.startswith("UsageError: ") and "\n" not in usage, stderr
    return "UsageError", usage[len("UsageError: "):], []


@pytest.mark.parametrize(("source", "expected"), [g[1:] for g in GOLDEN],
                         ids=[g[0] for g in GOLDEN])
def test_golden_error_line_at_load_and_at_dry_run(golden_nb, source, expected):
    index = 2 + 2 * [g[1] for g in GOLDEN].index(source)
    for cell in golden_nb.cells[index:index + 2]:
        ename, evalue, _tb = _error(cell)
        assert (ename, evalue) == ("UsageError", expected)
        assert "Traceback" not in text_of(cell)


def test_bad_line_command_arguments_are_one_usage_line(notebook):
    nb = notebook(["%load_ext chronum", "%chronum history -o h", "%chronum history x",
                   "%chronum frobnicate", "print('still going')"], allow_errors=True)
    assert _error(nb.cells[1])[:2] == (
        "UsageError", "%chronum history: unknown option -o; it takes --db, --flow, --status")
    assert _error(nb.cells[2])[:2] == (
        "UsageError", "%chronum history: argument limit: invalid count value: 'x'")
    ename, evalue, _ = _error(nb.cells[3])
    assert ename == "UsageError" and evalue.startswith("%chronum: argument command: invalid")
    assert text_of(nb.cells[4]) == "still going\n"


def test_raise_gives_one_run_failed_error_with_the_users_traceback(notebook):
    nb = notebook([
        "%load_ext chronum",
        "def explode():\n    raise ValueError('bad input')\n",
        "%%chronum boom --raise\nsteps:\n  - name: ok\n    run: echo fine\n"
        "  - name: blow\n    executor: python\n    call: explode\n    needs: [ok]\n",
    ], allow_errors=True)
    ename, evalue, tb = _error(nb.cells[2])
    assert ename == "RunFailedError"
    assert evalue.endswith("of boom failed: blow: ValueError: bad input")
    shown = "\n".join(tb)
    assert tb[0] == f"RunFailedError: {evalue}"
    assert "--- step blow ---" in shown and "raise ValueError('bad input')" in shown
    assert "Cell In[2], line 2, in explode" in shown  # where the user wrote it
    assert "ValueError: bad input" in tb[-1]
    assert "chronum/" not in shown  # none of Chronum's frames


def test_stop_button_prints_one_line_naming_resume(client_for, tmp_path):
    import asyncio

    pid_file = tmp_path / "pid"
    client = client_for([
        "%load_ext chronum",
        f"%%chronum stopme\nsteps:\n  - name: nap\n    run: echo $$ > {pid_file};"
        " exec sleep 30\n",
        "import chronum\nprint(chronum.history()['run_id'][0])",
    ])
    nb = client.nb

    async def drive() -> None:
        async with client.async_setup_kernel():
            await client.async_execute_cell(nb.cells[0], 0)
            cell = asyncio.create_task(client.async_execute_cell(nb.cells[1], 1))
            while not (pid_file.exists() and pid_file.read_text().strip()):
                await asyncio.sleep(0.05)
            await client.km.interrupt_kernel()
            await cell
            await client.async_execute_cell(nb.cells[2], 2)

    asyncio.run(drive())
    run_id = text_of(nb.cells[2]).strip()
    ename, evalue, tb = _error(nb.cells[1])
    line = f"run {run_id} cancelled; `%chronum resume {run_id}` runs the rest"
    assert (ename, evalue, tb) == ("CancelledError", line, [line])


def test_sdk_errors_point_at_the_cell_as_ipython_does(notebook):
    nb = notebook([
        "import chronum\nflow = chronum.Flow('sdk')\n",
        "first = 1\n@flow.step(timeout=-1)\ndef load():\n    return 1\n",
        "flow.build()",
    ], allow_errors=True)
    (error,) = [o for o in nb.cells[2].outputs if o.output_type == "error"]
    assert error.ename == "SpecError"
    assert error.evalue == "Cell In[2], line 2: load.timeout: must be greater than 0, got -1"
    assert error.traceback == [f"SpecError: {error.evalue}"]
