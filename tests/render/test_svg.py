"""A run's graph: dot's picture laid out once, recoloured by a stylesheet, or baked."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from chronum.errors import ChronumError
from chronum.render import svg
from chronum.render.dot import STATE_COLORS, to_dot
from chronum.spec import loads

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is not installed")


def flow(retry: int = 3):
    return loads(f"name: g\nsteps:\n  - name: a\n    run: x\n  - name: b\n    run: y\n"
                 f"    needs: [a]\n    retry: {retry}\n", filename="g.yaml")


@needs_dot
def test_the_picture_is_dots_own_plus_step_names_and_badges():
    # 100 steps in chains of ten, as a notebook's large flows tend to be; every 7th retries
    steps = "".join(f"  - name: s{i}\n    run: x\n" + (f"    needs: [s{i - 1}]\n" if i % 10 else "")
                    + ("    retry: 2\n" if i % 7 == 0 else "") for i in range(100))
    big = loads(f"name: big\nsteps:\n{steps}", filename="big.yaml")
    graph = svg.layout_sync(big, "p")
    assert graph is not None
    drawn = subprocess.run(["dot", "-Tsvg"], input=to_dot(big, prefix="p").encode(),
                           capture_output=True, check=True).stdout.decode()
    # what chronum adds: a data-step per node group, and hidden badges under retrying steps
    steps_named = re.findall(r'<g id="p_(\d+)" class="node" data-step="s(\d+)">', graph.svg)
    assert len(steps_named) == 100 and all(i == name for i, name in steps_named)
    badges = re.findall(r'<text id="p_(\d+)_a(\d)" class="chronum-badge" display="none"[^>]*>'
                        r"try (\d)</text>\n", graph.svg)
    assert badges == [(str(i), n, n) for i in range(0, 100, 7) for n in "23"]
    # and an empty slot per node above its name, for the running time
    slots = re.findall(r'<foreignObject [^>]*><div [^>]*id="p_(\d+)_e" class='
                       r'"chronum-elapsed-badge"[^>]*></div></foreignObject>\n', graph.svg)
    assert slots == [str(i) for i in range(100)]
    assert " style=" not in graph.svg  # a page with a Content Security Policy reports those
    # the rest is dot's text, unchanged (from its <svg> element on: no XML prolog in HTML)
    plain = re.sub(r' data-step="[^"]*"|<text id="p_\d+_a\d+" [^>]*>[^<]*</text>\n'
                   r"|<foreignObject .*?</foreignObject>\n", "", graph.svg)
    assert plain == drawn[drawn.index("<svg"):]


@needs_dot
def test_badges_sit_under_the_step_name():
    graph = svg.layout_sync(flow(), "p")
    assert graph is not None
    label = re.search(r'<g id="p_1" [^>]*>.*?<text text-anchor="middle" x="([\d.]+)" '
                      r'y="(-?[\d.]+)"', graph.svg, re.S)
    badge = re.search(r'<text id="p_1_a2" [^>]*x="([\d.]+)" y="(-?[\d.]+)"', graph.svg)
    assert label is not None and badge is not None
    assert badge[1] == label[1] and float(badge[2]) == pytest.approx(float(label[2]) + 13)


@needs_dot
def test_bake_writes_states_into_the_svg():
    graph = svg.layout_sync(flow(), "p")
    assert graph is not None
    baked = svg.bake(graph, {"a": "succeeded", "b": "failed"}, {"a": 1, "b": 3})
    assert 'class="node state-succeeded" data-step="a" data-state="succeeded"' in baked
    assert 'class="node state-failed" data-step="b" data-state="failed"' in baked
    assert f'<path fill="{STATE_COLORS["failed"]}"' in baked  # without any stylesheet
    assert ">try 3</text>" in baked and ">try 2</text>" not in baked
    assert 'display="none"' not in baked
    # a step never reached stays pending, white, with no badge
    pending = svg.bake(graph, {"a": "failed"}, {"a": 1})
    assert 'data-step="b" data-state="pending"' in pending and "try" not in pending


@needs_dot
def test_the_stylesheet_paints_states_and_shows_the_badge_of_the_attempt_reached():
    graph = svg.layout_sync(flow(retry=12), "p")
    assert graph is not None
    style = svg.stylesheet(graph, {"a": "succeeded", "b": "retrying"}, {"a": 1, "b": 11})
    assert style == (
        '<style>[id^="p_"]>rect,[id^="p_"]>path,[id^="p_"]>polygon'
        "{fill:var(--chronum-fill,#ffffff)}\n"
        f"#p_1{{--chronum-state:retrying;--chronum-fill:{STATE_COLORS['retrying']}}}\n"
        f"#p_0{{--chronum-state:succeeded;--chronum-fill:{STATE_COLORS['succeeded']}}}\n"
        f"#p_1_a{svg.MAX_BADGE}{{display:inline}}\n"  # later tries show the last badge
        '[id^="p_"] .chronum-elapsed-badge{font:9px Helvetica,sans-serif;line-height:12px;'
        "text-align:center;color:#444}\n"  # the running-time slot's look, never inline
        ".chronum-graph svg{max-width:100%;height:auto}</style>")
    assert f'id="p_1_a{svg.MAX_BADGE}"' in graph.svg
    assert f'id="p_1_a{svg.MAX_BADGE + 1}"' not in graph.svg


@needs_dot
def test_a_flow_laid_out_before_is_not_laid_out_again(tmp_path: Path):
    # A dot that counts its calls, in front of the real one.
    calls = tmp_path / "calls"
    dot = tmp_path / "dot"
    dot.write_text(f'#!/bin/sh\necho run >> "{calls}"\nexec "{shutil.which("dot")}" "$@"\n')
    dot.chmod(0o755)

    first = asyncio.run(svg.layout(flow(3), "p1", dot=str(dot)))
    again = asyncio.run(svg.layout(flow(3), "p2", dot=str(dot)))
    assert first is not None and again is not None
    assert calls.read_text().count("run") == 1
    assert again.prefix == "p2" and 'id="p1_' not in again.svg
    assert again.svg == first.svg.replace('id="p1_', 'id="p2_')
    assert 'id="p2_1_a4"' in again.svg and 'id="p2_1_a5"' not in again.svg  # 4 attempts
    # other retry limits draw other badges, on the same layout
    more = asyncio.run(svg.layout(flow(5), "p3", dot=str(dot)))
    assert more is not None and 'id="p3_1_a6"' in more.svg
    assert calls.read_text().count("run") == 1
    # other needs are another layout
    other = loads("name: g\nsteps:\n  - name: a\n    run: x\n  - name: b\n    run: y\n",
                  filename="g.yaml")
    assert asyncio.run(svg.layout(other, "p4", dot=str(dot))) is not None
    assert calls.read_text().count("run") == 2


def test_no_graphviz_no_layout_and_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no `dot` to find
    assert svg.layout_sync(flow(), "p") is None
    assert asyncio.run(svg.layout(flow(), "p")) is None
    with pytest.raises(ChronumError, match="install the graphviz package"):
        svg.render(flow())


@needs_dot
def test_render_draws_with_dot_and_reports_its_failure():
    assert svg.render(flow(), "svg").startswith(b"<?xml")
    assert svg.render(flow(), "png").startswith(b"\x89PNG")
    with pytest.raises(ChronumError, match=r"^dot failed: .*nonsense"):
        svg.render(flow(), "nonsense")


@needs_dot
def test_a_runs_graph_is_remembered():
    graph = svg.graph_for("run1", flow())
    assert graph is not None and graph.prefix == svg.prefix_for("run1") == "chronum_run1"
    assert svg.graph_for("run1", flow()) is graph
    other = svg.graph_for("run1", flow(retry=1))  # drawn again with the flow a caller knows
    assert other is not None and other is not graph and other.badges == (0, 2)
    assert svg.graph_for("run1", flow(retry=1)) is other
    svg.remember_graph("run2", None)  # graphviz could not draw it: not tried again
    assert svg.graph_for("run2", flow()) is None


@needs_dot
def test_running_steps_show_their_time_above_their_name():
    graph = svg.layout_sync(flow(), "p")
    assert graph is not None
    style = svg.stylesheet(graph, {"a": "running"}, {"a": 1}, elapsed={"a": 7.6, "b": 125})
    assert '#p_0_e::after{content:"7 s"}' in style
    assert '#p_1_e::after{content:"2 min 5 s"}' in style
