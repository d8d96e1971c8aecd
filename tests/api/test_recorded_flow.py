"""``api.recorded_flow``: the one rebuild of a past run's flow, public, used by ``show()`` and
``chronum serve``. Real runs, real SQLite."""

from __future__ import annotations

import ast
import contextlib
import textwrap
from pathlib import Path

import chronum
from chronum.api import recorded_flow
from chronum.store import Store

ROOT = Path(chronum.__file__).parent


def _info(db: Path, run_id: str) -> dict:
    with contextlib.closing(Store(db)) as store:
        return store.run(run_id)


def test_a_past_run_s_flow_comes_back_from_its_file_then_from_its_step_names(tmp_path: Path):
    flow_file = tmp_path / "f.yaml"
    flow_file.write_text(textwrap.dedent("""
        name: edges
        params: {who: world}
        steps:
          - name: a
            run: echo a
          - name: b
            needs: a
            run: echo "hello $CHRONUM_PARAM_WHO"
    """))
    db = tmp_path / "runs.db"
    run = chronum.run(flow_file, db=db, params={"who": "you"})
    flow = recorded_flow(_info(db, run.run_id))
    assert flow.name == "edges" and flow.step("b").needs == ("a",)
    assert flow.params["who"] == "you"  # loaded with the run's params

    flow_file.write_text("name: edges\nsteps: [{name: a, run: x, needs: gone}]\n")
    fallback = recorded_flow(_info(db, run.run_id))  # the file no longer loads
    assert fallback.step_names == ("a", "b") and fallback.step("b").needs == ()
    flow_file.unlink()
    assert recorded_flow(_info(db, run.run_id)).step_names == ("a", "b")


def test_no_module_imports_a_private_name_of_the_api():
    """``chronum serve`` used ``api._recorded_flow``: a front end uses public names only."""
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("api"):
                offenders += [f"{path.relative_to(ROOT)}: {alias.name}" for alias in node.names
                              if alias.name.startswith("_")]
    assert offenders == []
