"""The JSON API of `chronum serve`, over runs made by real `chronum run` processes."""

from __future__ import annotations

import re

from .conftest import Served

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")


def test_a_run_shows_in_every_view_of_the_api(served: Served):
    flow = served.write("f.yaml", """
        name: shapes
        steps:
          - name: a
            run: echo hello from a
          - name: b
            run: "echo once; exit 3"
            needs: [a]
            retry: {limit: 1, backoff: {base: 0.01}}
          - name: c
            run: "true"
            needs: [b]
    """)
    proc = served.run(flow)
    assert proc.returncode == 1, proc.stderr
    page = served.get("/api/runs")
    assert page["total"] == 1
    (row,) = page["runs"]
    assert list(row) == ["run_id", "flow", "status", "started_at", "finished_at", "duration_s",
                         "n_steps", "n_failed", "parent_run_id", "n_continued"]
    assert (row["flow"], row["status"], row["n_steps"], row["n_failed"]) == (
        "shapes", "failed", 3, 1)
    assert ISO.match(row["started_at"]) and ISO.match(row["finished_at"])
    rid = row["run_id"]

    run = served.get(f"/api/runs/{rid[:6]}")
    assert run["run_id"] == rid
    assert [(s["step"], s["status"], s["attempts"]) for s in run["steps"]] == [
        ("a", "succeeded", 1), ("b", "failed", 2), ("c", "upstream_failed", 0)]
    assert served.get(f"/api/runs/{rid}/steps") == run["steps"]
    attempts = served.get(f"/api/runs/{rid}/attempts")
    assert [(a["step"], a["attempt"], a["status"]) for a in attempts] == [
        ("a", 1, "succeeded"), ("b", 1, "failed"), ("b", 2, "failed")]
    events = served.get(f"/api/runs/{rid}/events")
    assert events[0]["kind"] == "run.started" and events[-1]["kind"] == "run.finished"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    later = served.get(f"/api/runs/{rid}/events?after=3")
    assert later == events[3:]

    log = served.get(f"/api/runs/{rid}/logs/b")
    assert log["text"].splitlines() == ["once", "--- attempt 2 ---", "once"]
    more = served.get(f"/api/runs/{rid}/logs/b?offset={log['offset']}")
    assert more["text"] == "" and more["offset"] == log["offset"]

    graph = served.get(f"/api/runs/{rid}/graph")
    assert graph["svg"].startswith("<?xml") or "<svg" in graph["svg"]
    assert 'data-step="b"' in graph["svg"]
    timeline = served.get(f"/api/runs/{rid}/timeline")
    assert 'data-attempt="2"' in timeline["svg"]


def test_runs_are_paginated_newest_first_and_filtered(served: Served):
    ok = served.write("ok.yaml", "name: ok\nsteps:\n  - name: a\n    run: 'true'\n")
    bad = served.write("bad.yaml", "name: bad\nsteps:\n  - name: a\n    run: 'exit 1'\n")
    for flow in (ok, bad, ok, ok, bad):
        served.run(flow)
    everything = served.get("/api/runs?limit=2")
    assert everything["total"] == 5 and len(everything["runs"]) == 2
    second = served.get("/api/runs?limit=2&offset=2")
    third = served.get("/api/runs?limit=2&offset=4")
    ids = [r["run_id"] for page in (everything, second, third) for r in page["runs"]]
    assert len(set(ids)) == 5
    starts = [r["started_at"] for page in (everything, second, third) for r in page["runs"]]
    assert starts == sorted(starts, reverse=True)
    assert [r["flow"] for page in (everything, second, third) for r in page["runs"]] == [
        "bad", "ok", "ok", "bad", "ok"]
    assert served.get("/api/runs?flow=bad")["total"] == 2
    assert served.get("/api/runs?status=succeeded")["total"] == 3
    assert served.get("/api/runs?flow=ok&status=failed")["total"] == 0
    late = starts[1]
    assert served.get(f"/api/runs?since={late.replace('+00:00', 'Z')}")["total"] == 2
    status, _, body = served.request("/api/runs?status=nonsense")
    assert status == 400 and b"unknown status" in body

    flows = served.get("/api/flows")["flows"]
    assert [f["flow"] for f in flows] == ["bad", "ok"]
    assert [r["status"] for r in flows[1]["runs"]] == ["succeeded"] * 3
    detail = served.get("/api/flows/bad")
    assert len(detail["runs"]) == 2
    assert detail["steps"][0]["failure_rate"] == 1.0
    assert served.get("/api/flows/ok")["slowest"][0]["step"] == "a"


def test_an_unknown_run_is_a_404_with_a_sentence(served: Served):
    status, _, body = served.request("/api/runs/nope")
    assert status == 404 and b"no run" in body


def test_resume_from_the_api_runs_what_failed_in_a_new_linked_run(served: Served):
    flow = served.write("r.yaml", """
        name: resumable
        steps:
          - name: first
            run: echo first
          - name: gate
            run: test -e open
            needs: [first]
    """)
    assert served.run(flow).returncode == 1
    rid = served.get("/api/runs")["runs"][0]["run_id"]
    (served.folder / "open").touch()
    status, body = served.post(f"/api/runs/{rid}/resume", {"confirm": rid})
    assert status == 200 and body["result"] == "resuming", body

    def resumed() -> dict | None:
        runs = served.get("/api/runs")["runs"]
        child = [r for r in runs if r["parent_run_id"] == rid]
        return child[0] if child and child[0]["status"] != "running" else None

    child = served.wait_for(resumed, timeout=60, what="the resume to finish")
    assert child["status"] == "succeeded"
    steps = served.get(f"/api/runs/{child['run_id']}/steps")
    assert [(s["step"], s["status"]) for s in steps] == [("first", "cached"),
                                                         ("gate", "succeeded")]
    parent = served.get(f"/api/runs/{rid}")
    assert [r["run_id"] for r in parent["resumes"]] == [child["run_id"]]
    # a resume that cannot be is said at once, in a sentence
    status, body = served.post(f"/api/runs/{child['run_id']}/resume",
                               {"confirm": child["run_id"]})
    assert status == 409 and body["error"]
