"""The engine's side of fan-out: stopping, cancelling, empty lists, and the state fold."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from pathlib import Path

import chronum
from chronum.eventbus import StepExpanded, StepStarted
from chronum.state import RunState


def _flow(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "f.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def _states(db: Path, run_id: str) -> dict[str, str]:
    frame = chronum.steps(run_id, db=db)
    return dict(zip(frame["step"], frame["status"].astype(str), strict=True))


def test_stop_on_fail_stops_at_the_first_failed_instance(tmp_path: Path):
    flow = _flow(tmp_path, """
        name: stop
        stopOnFail: true
        steps:
          - name: each
            foreach: [ok, fail, ok, ok]
            run: test "$CHRONUM_ITEM" = ok
          - {name: after, run: "true", needs: [each]}
    """)
    db = tmp_path / "c.db"
    run = chronum.run(flow, db=db)
    assert run.status == "failed"
    assert _states(db, run.run_id) == {
        "each": "failed", "after": "upstream_failed", "each[0]": "succeeded",
        "each[1]": "failed", "each[2]": "skipped", "each[3]": "skipped"}
    assert "1 of 4 instances failed: each[1]" in run.errors["each"]


def test_a_cancelled_fanout_leaves_nothing_running_or_pending(tmp_path: Path):
    flow = _flow(tmp_path, """
        name: cancel
        maxParallel: 2
        steps:
          - {name: each, foreach: [1, 2, 3, 4, 5], run: sleep 30}
    """)
    db = tmp_path / "c.db"
    events: list[object] = []

    async def main() -> None:
        task = asyncio.ensure_future(chronum.arun(flow, db=db, subscribers=[events.append]))
        while sum(isinstance(e, StepStarted) for e in events) < 2:
            await asyncio.sleep(0.02)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
    states = _states(db, chronum.history(db=db)["run_id"][0])
    assert states == {"each": "cancelled", "each[0]": "cancelled", "each[1]": "cancelled",
                      "each[2]": "skipped", "each[3]": "skipped", "each[4]": "skipped"}


def test_an_empty_list_succeeds_at_once_with_an_empty_value(tmp_path: Path):
    (tmp_path / "fe.py").write_text("def nothing():\n    return []\n\n"
                                    "def count(each):\n    return len(each)\n")
    flow = _flow(tmp_path, """
        name: empty
        steps:
          - {name: src, executor: python, call: "fe:nothing"}
          - {name: each, run: "false", foreach: {from: src}}
          - {name: count, executor: python, call: "fe:count", needs: [each]}
    """)
    run = chronum.run(flow, db=tmp_path / "c.db")
    assert run.status == "succeeded"
    assert run.outputs["each"] == [] and run.outputs["count"] == 0


def test_the_fold_adds_instances_with_their_items():
    state = RunState.new("r", ["a", "each"])
    state.apply(StepExpanded(run_id="r", at=5.0, step="each", instances=("each[0]", "each[1]"),
                             items=('"x"', "2")))
    assert state.steps["each"].status == "running" and state.steps["each"].started_at == 5.0
    assert [state.steps[n].item for n in ("each[0]", "each[1]")] == ['"x"', "2"]
    assert state.counts == {"pending": 3, "running": 1}
    assert state.fanouts == {"each": ["each[0]", "each[1]"]}
    state.apply(StepStarted(run_id="r", at=6.0, step="each[1]", attempt=1))
    assert state.active() == ["each", "each[1]"]


def test_each_instance_times_out_on_its_own(tmp_path: Path):
    flow = _flow(tmp_path, """
        name: timeouts
        maxParallel: 2
        steps:
          - {name: nap, foreach: ["0.1", "30"], run: sleep "$CHRONUM_ITEM", timeout: 1,
             continueOnError: true}
    """)
    db = tmp_path / "c.db"
    run = chronum.run(flow, db=db)
    frame = chronum.steps(run.run_id, db=db).set_index("step")
    assert frame.loc["nap[0]", "status"] == "succeeded"
    assert frame.loc["nap[1]", "status"] == "failed" and frame.loc["nap[1]", "exit_code"] == 124
    assert "timed out after 1s" in frame.loc["nap[1]", "reason"]
    assert run.status == "succeeded"  # continueOnError on the fan-out step


def test_the_live_terminal_view_shows_a_fanout_as_one_line():
    import io

    from chronum.cli.display import LivePrinter
    from chronum.eventbus import RunStarted, StepSucceeded

    out = io.StringIO()
    printer = LivePrinter(out=out)
    names = tuple(f"each[{i}]" for i in range(100))
    printer(RunStarted(run_id="r", flow="f", steps=("each",)))
    printer(StepExpanded(run_id="r", step="each", instances=names, items=("1",) * 100))
    for name in names[:40]:
        printer(StepStarted(run_id="r", step=name, attempt=1))
    for name in names[:37]:
        printer(StepSucceeded(run_id="r", step=name, attempt=1))
    block = printer._block(0.0, 100)
    assert block[0] == "  ▶ each[ 37/100 ] ✓37 ✗0"
    assert not any("each[3" in line for line in block[1:])  # no line per running instance
    printer.close()
    assert "each[0]" not in out.getvalue()  # nor a line per instance that ended
