"""``if_=`` and ``timeout=`` in flows written with chronum.Flow; ``ctx.output`` from a call."""

from __future__ import annotations

import chronum


def test_if_and_outputs_in_a_python_flow(tmp_path):
    flow = chronum.Flow("sdk-lang", params={"mode": "full"}, timeout=600)
    flow.shell("produce", 'echo "rows=42" >> "$CHRONUM_OUTPUT"')

    @flow.step(needs=["produce"], if_="steps.produce.outputs.rows > 40")
    def use(produce, ctx):
        ctx.output("seen", int(produce["rows"]))
        return int(produce["rows"]) * 2

    @flow.step(needs=["produce"], if_="params.mode == 'quick'")
    def quick():
        return 1

    flow.shell("report", 'test "$CHRONUM_OUT_USE_SEEN" = 42', needs=["use", "quick"],
               if_="always()")
    model = flow.build()
    assert model.timeout == 600 and model.step("use").condition is not None
    run = flow.run(db=tmp_path / "c.db")
    assert run.status == "succeeded"
    assert run.outputs == {"produce": {"rows": "42"}, "use": 84}
    rows = chronum.steps(run.run_id, db=tmp_path / "c.db")
    assert dict(zip(rows["step"], rows["status"], strict=True)) == {
        "produce": "succeeded", "use": "succeeded", "quick": "skipped", "report": "succeeded"}
