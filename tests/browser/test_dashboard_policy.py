"""The dashboard as a user's browser sees it, with its Content-Security-Policy in force (the
other dashboard tests lift it to drive the page): every page of a recorded run, a failed run
and a flow draws without one console error or failed request, the policy's reports included; the
flow page's chart of durations is labelled and leads to its runs."""

from __future__ import annotations

from typing import Any

from tests.serve.conftest import Served


def test_every_page_draws_without_a_console_error_under_the_policy(browser: Any,
                                                                    served: Served) -> None:
    flow = served.write("retried.yaml", """
        name: retried
        steps:
          - name: build
            run: echo built
          - name: flaky
            needs: [build]
            retry: {limit: 1, backoff: {base: 0.01}}
            run: echo trying; exit 3
          - name: after
            needs: [flaky]
            run: echo never
    """)
    done = served.run(flow)
    assert done.returncode == 1, done.stderr
    run_id = served.get("/api/runs")["runs"][0]["run_id"]

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}")
            if r.status >= 400 else None)
    page.on("requestfailed", lambda r: problems.append(f"failed {r.url}"))
    try:
        page.goto(f"{served.url}/#token={served.token}")
        page.wait_for_selector("tr[data-run]")
        page.click(f"a[href='/runs/{run_id}']")
        # the graph, with its running-time slots (the live picture's), and the timeline
        page.wait_for_selector('#graph g.node[data-step="flaky"][data-state="failed"]')
        page.wait_for_selector('#timeline rect.chronum-attempt[data-step="flaky"]')
        page.goto(f"{served.url}/flows/retried")
        page.wait_for_selector("table")
        # the durations chart is labelled, and its dot of a run leads to that run
        ticks = page.locator("svg.durations text.tick").all_text_contents()
        assert ticks[0] == "0.00 s" and ticks[-2:] == ["older", "newer"], ticks
        page.click(f'svg.durations a[data-run="{run_id}"] circle')
        page.wait_for_selector('#graph g.node[data-step="flaky"][data-state="failed"]')
        page.wait_for_timeout(500)  # a late report of the policy would arrive by now
    finally:
        context.close()
    assert problems == []
