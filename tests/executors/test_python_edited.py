"""A flow's own module as it is now: running a flow again in the same process (a notebook
kernel) after its module was edited runs the edited code, and two flows whose folders each
have a module of the same name each run their own. Real runs, real files, one process."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import chronum

FLOW = """\
name: edited
steps:
  - name: hi
    executor: python
    call: {module}:hello
"""


@pytest.fixture
def module_name(request: pytest.FixtureRequest) -> Iterator[str]:
    # A name no other test imports, forgotten afterwards.
    name = f"edited_{request.node.name.replace('[', '_').replace(']', '')}"
    yield name
    sys.modules.pop(name, None)


def _project(folder: Path, module: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(textwrap.dedent(body))
    flow = folder / "flow.yaml"
    flow.write_text(FLOW.format(module=module))
    return flow


def _said(db: Path, run: chronum.Run) -> str:
    return chronum.steps(run.run_id, db=db).set_index("step").loc["hi", "status"] + ":" + \
        str(run.outputs.get("hi"))


def test_a_module_edited_between_two_runs_runs_as_edited(tmp_path: Path, module_name: str):
    db = tmp_path / "state.db"
    flow = _project(tmp_path / "p", module_name, "def hello():\n    return 'first'\n")
    assert _said(db, chronum.run(flow, db=db)) == "succeeded:first"
    (tmp_path / "p" / f"{module_name}.py").write_text(
        "def hello():\n    return 'second, longer'\n")
    assert _said(db, chronum.run(flow, db=db)) == "succeeded:second, longer"
    # unchanged since: the module is not imported again (its state lives on)
    module = sys.modules[module_name]
    module.marker = 1  # type: ignore[attr-defined]
    assert _said(db, chronum.run(flow, db=db)) == "succeeded:second, longer"
    assert sys.modules[module_name] is module and module.marker == 1  # type: ignore[attr-defined]


def test_an_edit_that_breaks_the_module_fails_the_step_and_a_fix_runs(tmp_path: Path,
                                                                      module_name: str):
    db = tmp_path / "state.db"
    flow = _project(tmp_path / "p", module_name, "def hello():\n    return 1\n")
    assert chronum.run(flow, db=db).status == "succeeded"
    source = tmp_path / "p" / f"{module_name}.py"
    source.write_text("def hello(:\n    return 2\n")
    broken = chronum.run(flow, db=db)
    assert broken.status == "failed"
    reason = chronum.steps(broken.run_id, db=db).set_index("step").loc["hi", "reason"]
    assert reason == (f"{module_name}:hello: cannot import module {module_name!r}: "
                      f"SyntaxError: invalid syntax ({module_name}.py, line 1)")
    source.write_text("def hello():\n    return 'fixed'\n")
    assert _said(db, chronum.run(flow, db=db)) == "succeeded:fixed"


def test_two_folders_with_a_module_of_one_name_each_run_their_own(tmp_path: Path,
                                                                 module_name: str):
    db = tmp_path / "state.db"
    first = _project(tmp_path / "a", module_name, "def hello():\n    return 'from a'\n")
    second = _project(tmp_path / "b", module_name, "def hello():\n    return 'from b!'\n")
    for flow, said in [(first, "from a"), (second, "from b!"), (first, "from a")]:
        assert _said(db, chronum.run(flow, db=db)) == f"succeeded:{said}"
