"""DOT: one builder for ``chronum graph`` and the notebook, compared byte for byte."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chronum.errors import DotNotFoundError
from chronum.model import Flow, Step
from chronum.render.dot import STATE_COLORS, Graph, quote, to_dot
from chronum.spec import loads

GOLDEN = Path(__file__).parent / "golden"

#: Steps out of dependency order, a need named twice, a retrying step and a python step.
SMALL = """\
name: small
steps:
  - name: report
    run: echo report
    needs: [clean, load, load]
  - name: load
    run: echo load
  - name: clean
    executor: python
    call: json:dumps
    needs: [load]
    retry: 2
"""


def small() -> Flow:
    return loads(SMALL, filename="small.yaml")


@pytest.mark.parametrize(("golden", "options"), [
    ("small.dot", {}),
    ("small-states.dot", {"states": {"load": "succeeded", "clean": "retrying"}}),
    ("small-notebook.dot", {"prefix": "chronum_r1"}),
], ids=["plain", "states", "notebook"])
def test_dot_matches_its_golden_file(golden: str, options: dict) -> None:
    expected = (GOLDEN / golden).read_text(encoding="utf-8")
    assert to_dot(small(), **options) == expected


def test_dot_is_the_same_in_every_process() -> None:
    # nodes in file order, edges sorted: no set or dict order leaks in, whatever the hash seed
    script = ("from chronum.spec import loads; from chronum.render.dot import to_dot; "
              f"print(to_dot(loads({SMALL!r}, filename='small.yaml')), end='')")
    outputs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
               for seed in ("0", "1", "2")}
    assert outputs == {to_dot(small())}


def test_names_are_quoted_for_dot() -> None:
    assert quote('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'
    flow = Flow(name='the "best" flow', steps=(Step(name='a"b'), Step(name="c", needs=('a"b',))))
    dot = to_dot(flow)
    assert dot.startswith('digraph "the \\"best\\" flow" {\n')
    assert '  "a\\"b" -> "c";\n' in dot


def test_states_colour_nodes_and_unknown_states_stay_white() -> None:
    dot = to_dot(small(), {"report": "failed", "load": "mystery"})
    assert f'fillcolor="{STATE_COLORS["failed"]}", class="state-failed"' in dot
    assert 'fillcolor="#ffffff", class="state-mystery"' in dot


def test_the_notebook_source_gives_each_node_an_id_and_room_for_its_badges() -> None:
    dot = to_dot(small(), prefix="p")
    assert '"report" [id="p_0", label="report", height=0.6];' in dot
    assert '"clean" [id="p_2", label="clean", height=0.6];' in dot
    assert "tooltip" not in dot  # dot would wrap the node's shapes in a link group


def test_graph_is_its_dot_text_and_an_svg_where_graphviz_is() -> None:
    graph = Graph(small(), {"load": "succeeded"})
    assert str(graph) == graph.dot == to_dot(small(), {"load": "succeeded"})
    assert repr(graph) == "<Graph of 'small': 3 steps>"
    bundle = graph._repr_mimebundle_()
    assert bundle["text/plain"] == graph.dot
    if shutil.which("dot"):
        assert bundle["image/svg+xml"].startswith("<?xml")
        assert 'class="node state&#45;succeeded"' in bundle["image/svg+xml"]


def test_graph_without_dot_is_its_text_alone(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no `dot` to find
    graph = Graph(small())
    assert graph._repr_mimebundle_() == {"text/plain": graph.dot}
    with pytest.raises(DotNotFoundError, match="install the graphviz package") as caught:
        graph.svg()
    assert caught.value.exit_code == 2
