"""The static picture of a run, drawn from rows the caller passes in."""

from __future__ import annotations

import base64
import re
import shutil

import pytest

from chronum.render import html, svg
from chronum.render.dot import STATE_COLORS
from chronum.spec import loads

FLOW = loads("name: f\nsteps:\n  - name: a\n    run: x\n  - name: b\n    run: y\n"
             "    needs: [a]\n    retry: 2\n", filename="f.yaml")
ROWS = [{"step": "a", "status": "succeeded", "attempts": 1, "duration_s": 0.5,
         "exit_code": 0, "log_tail": "line 1\nline 2\n"},
        {"step": "b", "status": "failed", "attempts": 3, "duration_s": None,
         "exit_code": 2, "log_tail": None}]


def test_a_snapshot_is_made_from_step_rows():
    snap = html.snapshot_from_rows(FLOW, "r1", "failed", 4.0, ROWS)
    assert (snap.run_id, snap.status, snap.elapsed_s) == ("r1", "failed", 4.0)
    assert snap.states == {"a": "succeeded", "b": "failed"}
    assert snap.attempts == {"a": 1, "b": 3} and snap.exit_codes == {"a": 0, "b": 2}
    assert snap.logs == {"a": "line 1\nline 2\n", "b": ""}
    assert snap.rows()[1] == {"step": "b", "status": "failed", "attempts": 3,
                              "duration_s": None, "exit_code": 2, "reason": None}


def test_the_bundle_has_fixed_text_and_the_picture_and_honours_include_exclude():
    bundle = html.run_bundle(FLOW, "r1", "failed", 4.0, ROWS, None)
    assert bundle["text/plain"] == "<chronum run f: failed (2 steps)>"
    page = bundle["text/html"]
    assert '<span class="chronum-elapsed">4.0s</span>' in page
    assert '<span class="chronum-progress">2/2</span>' in page
    assert f'data-step="a" data-state="succeeded" class="state-succeeded" ' \
           f'style="background:{STATE_COLORS["succeeded"]}"' in page
    assert "<td>0.50s</td>" in page and "chronum-graph" not in page  # no graph given
    assert '<details class="chronum-log" data-step="a">' in page  # b printed nothing
    assert html.run_bundle(FLOW, "r1", "failed", 4.0, ROWS, None,
                           include={"text/plain"}) == {"text/plain": bundle["text/plain"]}
    assert html.run_bundle(FLOW, "r1", "failed", 4.0, ROWS, None,
                           exclude={"text/plain"}) == {"text/html": page}


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is not installed")
def test_the_graph_is_an_image_with_the_states_baked_in():
    graph = svg.layout_sync(FLOW, "chronum_r1")
    page = html.run_bundle(FLOW, "r1", "failed", 4.0, ROWS, graph)["text/html"]
    (image,) = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', page)
    picture = base64.b64decode(image).decode()
    assert picture.startswith("<svg")
    assert 'class="node state-failed" data-step="b" data-state="failed"' in picture
    assert ">try 3</text>" in picture


def test_a_long_table_shows_counts_and_the_rows_worth_looking_at():
    rows = [{"step": f"s{i}", "status": "succeeded" if i % 10 else "failed", "attempts": 1,
             "duration_s": 0.1, "exit_code": 0} for i in range(50)]
    table = html.table_html(rows, limit=20)
    assert table.startswith('<div class="chronum-counts">5 failed, 45 succeeded</div>')
    assert re.findall(r'<tr data-step="(\w+)"', table) == [f"s{i}" for i in range(0, 50, 10)]
    assert table.count("<tr data-step") == 50 - 45
    assert html.table_html(rows).count("<tr data-step") == 50


def test_log_tails_are_the_last_lines_in_file_order_within_a_budget(monkeypatch):
    logs = {"b": "".join(f"b{i}\n" for i in range(100)), "a": "<a & b>"}
    text = html.logs_html(logs, ["a", "b", "quiet"])
    assert re.findall(r'data-step="(\w+)"', text) == ["a", "b"]
    assert "&lt;a &amp; b&gt;" in text
    tail = re.search(r'data-step="b"><summary>b</summary><pre>(.*?)</pre>', text, re.S)
    assert tail is not None
    assert tail[1].splitlines() == [f"b{i}" for i in range(100 - html.LOG_LINES, 100)]
    monkeypatch.setattr(html, "LOG_BUDGET", 5)
    assert html.logs_html(logs, ["a", "b"]).count("<details") == 1  # the budget ran out
