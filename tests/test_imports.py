"""`import chronum` stays light: checked in a fresh interpreter, like click's test_imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = {"pandas", "numpy", "IPython", "ipywidgets", "graphviz", "dask", "distributed",
         "yaml", "asyncio", "sqlite3"}


def _imported_after(code: str) -> set[str]:
    script = (
        "import sys; before = set(sys.modules);"
        f"{code};"
        "import json; print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    return {name.split(".")[0] for name in json.loads(out)}


def test_import_chronum_imports_nothing_heavy():
    assert _imported_after("import chronum") & HEAVY == set()


@pytest.mark.parametrize("module", ["chronum.store", "chronum.engine", "chronum.spec",
                                    "chronum.cli", "chronum.api"])
def test_no_module_imports_pandas_or_notebook_libraries(module):
    heavy = {"pandas", "IPython", "ipywidgets", "graphviz", "dask", "distributed"}
    assert _imported_after(f"import {module}") & heavy == set()


def test_public_names_resolve_and_are_sorted():
    import chronum

    assert chronum.__all__ == sorted(chronum.__all__)
    for name in chronum.__all__:
        assert getattr(chronum, name) is not None


def test_dataframe_functions_do_not_import_asyncio(tmp_path):
    # A script that only reads history pays for pandas, not also for the event loop (~70 ms).
    db = tmp_path / "c.db"
    imported = _imported_after(f"import chronum; chronum.history(db={str(db)!r})")
    assert "pandas" in imported and "asyncio" not in imported


#: The extras of `chronum serve`, `otel` and `parquet`: none may load for a plain run.
EXTRAS = {"starlette", "uvicorn", "websockets", "prometheus_client", "opentelemetry",
          "google", "pyarrow", "requests"}


@pytest.mark.parametrize("module", ["chronum", "chronum.cli", "chronum.api", "chronum.session"])
def test_no_module_imports_the_serve_otel_or_parquet_extras(module):
    assert _imported_after(f"import {module}") & EXTRAS == set()


def test_a_cli_run_imports_none_of_the_extras(tmp_path):
    flow = tmp_path / "f.yaml"
    flow.write_text("name: f\nsteps:\n  - name: a\n    run: 'true'\n")
    code = (f"import contextlib, io; from chronum.cli import main; out = io.StringIO(); "
            f"cm = contextlib.redirect_stdout(out); cm.__enter__(); "
            f"code = main(['run', {str(flow)!r}, '--db', {str(tmp_path / 'c.db')!r}, '-q']); "
            "cm.__exit__(None, None, None); assert code == 0, code")
    imported = _imported_after(code)
    assert "sqlite3" in imported  # it did run
    assert imported & EXTRAS == set()
