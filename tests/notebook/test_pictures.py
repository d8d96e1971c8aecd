"""Static pictures: the Gantt timeline, baked graphs, and ``Run``'s display in plain Python."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from chronum.notebook import svg
from chronum.notebook.timeline import _ticks, timeline_svg
from chronum.spec import loads


def test_timeline_draws_attempts_and_backoff_waits_to_scale():
    rows = [
        {"step": "a", "attempt": 1, "status": "succeeded", "started_at": 100.0,
         "finished_at": 101.0, "delay_s": 0.0},
        {"step": "b", "attempt": 1, "status": "failed", "started_at": 101.0,
         "finished_at": 102.0, "delay_s": 0.0},
        {"step": "b", "attempt": 2, "status": "succeeded", "started_at": 104.0,
         "finished_at": 105.0, "delay_s": 2.0},
    ]
    chart = timeline_svg(rows, ["a", "b", "never"])
    bars = re.findall(r'<rect class="chronum-attempt state-(\w+)" data-step="(\w+)" '
                      r'data-attempt="(\d)"[^>]*x="([\d.]+)" y="\d+" width="([\d.]+)"', chart)
    assert [b[:3] for b in bars] == [("succeeded", "a", "1"), ("failed", "b", "1"),
                                     ("succeeded", "b", "2")]
    # 5 s span over 560 px: each 1 s attempt is 112 px; b's second try starts at 4 s.
    assert [float(b[4]) for b in bars] == [112.0, 112.0, 112.0]
    assert float(bars[2][3]) == pytest.approx(140 + 4 * 112)
    wait = re.search(r'<rect class="chronum-wait" data-step="b" x="([\d.]+)" y="\d+" '
                     r'width="([\d.]+)"', chart)
    assert wait is not None
    assert (float(wait[1]), float(wait[2])) == (pytest.approx(140 + 2 * 112), 224.0)
    assert ">never</text>" in chart  # a step that never ran still has its row


@pytest.mark.parametrize(("span", "ticks"), [(5.0, [0, 1, 2, 3, 4, 5]), (0.3, None),
                                             (120.0, [0, 50, 100])], ids=["5s", "0.3s", "2min"])
def test_ticks_are_round(span, ticks):
    got = _ticks(span)
    assert got[0] == 0 and got[-1] <= span + 1e-9
    if ticks is not None:
        assert got == ticks
    assert 3 <= len(got) <= 11


def test_empty_timeline_is_an_empty_picture():
    assert 'width="0"' in timeline_svg([], ["a"])


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is not installed")
def test_bake_writes_states_into_the_svg():
    flow = loads("name: g\nsteps:\n  - name: a\n    run: x\n  - name: b\n    run: y\n"
                 "    needs: [a]\n    retry: 3\n", filename="g.yaml")
    graph = svg.layout_sync(flow, "p")
    assert graph is not None
    baked = svg.bake(graph, {"a": "succeeded", "b": "failed"}, {"a": 1, "b": 3})
    assert 'class="node state-succeeded" data-step="a" data-state="succeeded"' in baked
    assert 'fill="#f4a3a8"' in baked  # failed colour, without any stylesheet
    assert ">try 3</text>" in baked and ">try 2</text>" not in baked
    assert 'display="none"' not in baked


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is not installed")
def test_the_graph_is_dots_picture_in_about_half_its_bytes():
    # 100 steps in chains of ten, as a notebook's large flows tend to be
    steps = "".join(f"  - name: s{i}\n    run: x\n" + (f"    needs: [s{i - 1}]\n" if i % 10 else "")
                    for i in range(100))
    flow = loads(f"name: big\nsteps:\n{steps}", filename="big.yaml")
    graph = svg.layout_sync(flow, "p")
    assert graph is not None
    def dot(source: str) -> str:
        out = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True,
                             check=True).stdout.decode()
        return out[out.find("<svg"):]

    raw = dot(svg.dot_source(flow, "p"))
    # against dot's own picture of the same rounded boxes
    rounded = dot(svg.dot_source(flow, "p").replace('style="filled"', 'style="rounded,filled"'))
    assert len(graph.svg) < 0.6 * len(rounded)
    # every box drawn where dot drew it, with the corners dot gives rounded boxes
    boxes = re.findall(r'<g id="p_(\d+)" class="node">.*?<polygon [^>]*points="([^"]*)"', raw,
                       re.S)
    assert len(boxes) == 100
    for index, points in boxes:
        numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", points)]
        xs, ys = numbers[0::2], numbers[1::2]
        rect = re.search(rf'<g id="p_{index}" [^>]*>\s*<title>[^<]*</title>\s*<rect ([^>]*)/>',
                         graph.svg)
        assert rect is not None, f"step {index} is not drawn as a rect"
        got = {k: float(v) for k, v in re.findall(r'(x|y|width|height|rx)="([^"]*)"', rect[1])}
        width, height = max(xs) - min(xs), max(ys) - min(ys)
        assert (got["x"], got["y"]) == pytest.approx((min(xs), min(ys)))
        assert (got["width"], got["height"]) == pytest.approx((width, height))
        assert got["rx"] == pytest.approx(min(12, width / 3, height / 3))
    # the labels' font is said once, on the root group every label inherits it from
    assert graph.svg.count("font-family=") == 1
    assert '<g id="graph0" class="graph" text-anchor="middle" font-family=' in graph.svg
    assert graph.svg.count('class="node"') == 100 and "<!--" not in graph.svg


def test_a_flow_laid_out_before_is_not_laid_out_again(tmp_path):
    # A dot that counts its calls, in front of the real one.
    calls = tmp_path / "calls"
    dot = tmp_path / "dot"
    dot.write_text(f'#!/bin/sh\necho run >> "{calls}"\nexec "{shutil.which("dot")}" "$@"\n')
    dot.chmod(0o755)

    def flow(retry: int):
        return loads(f"name: g\nsteps:\n  - name: a\n    run: x\n  - name: b\n    run: y\n"
                     f"    needs: [a]\n    retry: {retry}\n", filename="g.yaml")

    first = asyncio.run(svg.layout(flow(3), "p1", dot=str(dot)))
    again = asyncio.run(svg.layout(flow(3), "p2", dot=str(dot)))
    assert first is not None and again is not None
    assert calls.read_text().count("run") == 1
    assert again.prefix == "p2" and 'id="p1_' not in again.svg
    assert again.svg == first.svg.replace('id="p1_', 'id="p2_')
    assert 'id="p2_1_a4"' in again.svg and 'id="p2_1_a5"' not in again.svg  # 4 attempts
    more = asyncio.run(svg.layout(flow(5), "p3", dot=str(dot)))  # other badges: laid out anew
    assert more is not None and 'id="p3_1_a6"' in more.svg
    assert calls.read_text().count("run") == 2


def test_run_displays_in_plain_python_without_importing_ipython(tmp_path):
    script = textwrap.dedent(f"""
        import sys, chronum
        from chronum.spec import loads
        flow = loads("name: p\\nsteps:\\n  - name: a\\n    run: echo hi\\n")
        run = chronum.run(flow, db={str(tmp_path / 'c.db')!r})
        bundle = run._repr_mimebundle_()
        print(bundle["text/plain"])
        print('class="chronum-table"' in bundle["text/html"], "IPython" in sys.modules,
              "ipywidgets" in sys.modules)
        print(chronum.show(run.run_id, db={str(tmp_path / 'c.db')!r})._repr_html_().count(
            'class="chronum-attempt'))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout
    assert out == "<chronum run p: succeeded (1 steps)>\nTrue False False\n1\n"
