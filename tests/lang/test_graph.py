"""Conditional edges are dashed, in the DOT text and in the picture dot draws from it."""

from __future__ import annotations

import shutil

import pytest

from chronum.render.dot import to_dot
from chronum.spec import loads

FLOW = """\
name: cond
steps:
  - name: work
    run: 'true'
  - name: publish
    needs: work
    run: 'true'
  - name: notify
    needs: [work, publish]
    if: failure()
    run: 'true'
"""


def test_edges_into_a_step_with_if_are_dashed():
    dot = to_dot(loads(FLOW, filename="f.yaml"))
    assert '  "work" -> "publish";\n' in dot
    assert '  "publish" -> "notify" [style=dashed];\n' in dot
    assert '  "work" -> "notify" [style=dashed];\n' in dot
    # the notebook's layout source is the same builder
    assert '"work" -> "notify" [style=dashed]' in to_dot(loads(FLOW, filename="f.yaml"),
                                                          prefix="p")


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")
def test_the_picture_draws_them_dashed():
    from chronum.render.svg import render

    svg = render(loads(FLOW, filename="f.yaml"), "svg").decode()
    assert svg.count("stroke-dasharray") == 2
