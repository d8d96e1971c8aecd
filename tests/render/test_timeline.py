"""The Gantt timeline of attempts, and ``chronum.show``'s picture."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import chronum
from chronum.render.timeline import RunPicture, _ticks, run_picture, timeline_svg
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


def test_run_picture_is_drawn_from_the_rows_given():
    flow = loads("name: p\nsteps:\n  - name: a\n    run: x\n  - name: b\n    run: y\n",
                 filename="p.yaml")
    info = {"run_id": "r1", "status": "failed", "duration_s": 2.5}
    rows = [{"step": "a", "status": "succeeded", "attempts": 1, "duration_s": 1.0,
             "exit_code": 0, "log_tail": "hello\n"},
            {"step": "b", "status": "failed", "attempts": 1, "duration_s": 1.5,
             "exit_code": 3, "log_tail": ""}]
    attempts = [{"step": "a", "attempt": 1, "status": "succeeded", "started_at": 10.0,
                 "finished_at": 11.0, "delay_s": 0.0}]
    picture = run_picture(flow, info, rows, attempts, None)
    text = picture._repr_html_()
    assert 'data-run-id="r1"' in text and '<span class="chronum-state">failed</span>' in text
    assert 'data-step="b" data-state="failed"' in text and "<pre>hello</pre>" in text
    assert text.count('class="chronum-attempt') == 1
    assert picture._repr_mimebundle_() == {"text/plain": "<chronum run p: failed (2 steps)>",
                                           "text/html": text}
    assert "chronum-timeline" not in run_picture(flow, info, rows, None, None).html_text


def test_run_displays_in_plain_python_without_importing_ipython(tmp_path: Path):
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
    assert out == "<chronum run p: succeeded (1 step)>\nTrue False False\n1\n"


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is not installed")
def test_show_draws_a_run_with_the_flow_given_or_the_steps_recorded(tmp_path: Path):
    flow = loads("name: p\nsteps:\n  - name: a\n    run: 'true'\n  - name: b\n"
                 "    run: 'true'\n    needs: [a]\n", filename="p.yaml")  # no file to reload
    db = tmp_path / "c.db"
    run = chronum.run(flow, db=db)

    def graph_of(picture: RunPicture) -> str:
        (image,) = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', picture.html_text)
        return base64.b64decode(image).decode()

    recorded = chronum.show(run.run_id[:6], db=db, timeline=False)
    assert 'class="edge"' not in graph_of(recorded)  # step names only: no needs
    assert "chronum-timeline" not in recorded.html_text
    given = chronum.show("last", db=db, flow=flow)
    assert 'class="edge"' in graph_of(given) and "chronum-timeline" in given.html_text
    assert given.snapshot.run_id == run.run_id
