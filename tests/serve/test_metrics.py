"""`/metrics`: Prometheus' text format computed from the store, parsed by prometheus_client."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from .conftest import Served


def test_metrics_count_what_the_store_holds(served: Served):
    ok = served.write("ok.yaml", "name: ok\nsteps:\n  - name: a\n    run: 'true'\n"
                                 "  - name: b\n    run: 'sleep 0.2'\n")
    bad = served.write("bad.yaml", "name: bad\nsteps:\n  - name: a\n    run: 'exit 1'\n")
    for flow in (ok, ok, bad):
        served.run(flow)
    status, headers, body = served.request("/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in families.values() for s in f.samples}
    assert samples[("chronum_runs_total", (("flow", "ok"), ("status", "succeeded")))] == 2
    assert samples[("chronum_runs_total", (("flow", "bad"), ("status", "failed")))] == 1
    assert samples[("chronum_steps_total", (("flow", "ok"), ("status", "succeeded")))] == 4
    assert samples[("chronum_steps_total", (("flow", "bad"), ("status", "failed")))] == 1
    assert families["chronum_run_duration_seconds"].type == "histogram"
    assert samples[("chronum_run_duration_seconds_count", (("flow", "ok"),))] == 2
    assert samples[("chronum_step_duration_seconds_bucket", (("flow", "ok"), ("le", "0.1")))] \
        == 2  # the two `true` steps; the sleeps took longer
    assert samples[("chronum_step_duration_seconds_bucket", (("flow", "ok"), ("le", "+Inf")))] \
        == 4
    assert ("chronum_runs_in_progress", (("flow", "ok"),)) not in samples
    last = samples[("chronum_last_success_timestamp_seconds", (("flow", "ok"),))]
    finished = served.get("/api/runs?flow=ok&limit=1")["runs"][0]["finished_at"]
    assert abs(last - __import__("datetime").datetime.fromisoformat(finished).timestamp()) < 1e-3
    assert ("chronum_last_success_timestamp_seconds", (("flow", "bad"),)) not in samples
    assert all(name.startswith("chronum_") for name in families)

    # the next scrape counts the new run too (the sums of finished runs are kept between)
    served.run(bad)
    _, _, body = served.request("/metrics")
    again = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for f in text_string_to_metric_families(body.decode()) for s in f.samples}
    assert again[("chronum_steps_total", (("flow", "bad"), ("status", "failed")))] == 2
    assert again[("chronum_steps_total", (("flow", "ok"), ("status", "succeeded")))] == 4
    assert again[("chronum_step_duration_seconds_count", (("flow", "bad"),))] == 2
