"""The pieces of ``make bench`` (``benchmarks/run.py``) that decide what its table says.

The whole bench installs doit into a venv and runs for minutes, too slow for the suite; these
tests check what the bench's figures rest on: the doit ``dodo.py`` and the Chronum flow are the
same DAG (and the floor's too), the runs are interleaved and their medians taken, the report
of doit is checked, and the budget verdicts come out right. One test runs the real harness end
to end on its two quickest rows.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import floor  # noqa: E402
import run as bench  # noqa: E402
import workloads as wl  # noqa: E402

SMALL = {
    "W0": (wl.one_step(), []),
    "W1": (wl.fan_in(5), [5]),
    "W2": (wl.chain(4), [4]),
    "W4": (wl.layers(3, 2), [3, 2]),
}


def _dodo_tasks(workload: wl.Workload) -> list[dict[str, Any]]:
    """The tasks doit would load from the generated ``dodo.py`` (its ``task_*`` generators)."""
    namespace: dict[str, Any] = {}
    exec(compile(wl.dodo_py(workload), "dodo.py", "exec"), namespace)
    makers = [f for name, f in namespace.items() if name.startswith("task_")]
    return [task for make in makers for task in make()]


@pytest.mark.parametrize("workload", [w for w, _ in SMALL.values()] + [wl.shell_true(3)],
                         ids=[*SMALL, "W3"])
def test_dodo_has_one_task_per_step_with_its_needs(workload: wl.Workload) -> None:
    tasks = _dodo_tasks(workload)
    assert [t["basename"] for t in tasks] == [s.name for s in workload.steps]
    assert [tuple(t["task_dep"]) for t in tasks] == [s.needs for s in workload.steps]
    for task, step in zip(tasks, workload.steps, strict=True):
        (action,) = task["actions"]
        if step.command is None:
            assert callable(action) and action() is None  # doit counts None as success
        else:
            assert action == step.command == "true"


def test_flow_and_dodo_come_from_the_same_shape() -> None:
    workload = wl.layers(3, 4)
    text = wl.flow_yaml(workload)
    names = [line.removeprefix("  - name: ") for line in text.splitlines()
             if line.startswith("  - name: ")]
    assert names == [t["basename"] for t in _dodo_tasks(workload)]
    assert wl.shape(text) == workload.counts == (12, 2 * 4 * 4)
    assert f"maxParallel: {workload.max_parallel}\n" in text


@pytest.mark.parametrize("name", list(SMALL))
def test_floor_runs_the_workload_dag(name: str) -> None:
    workload, sizes = SMALL[name]
    index = {s.name: i for i, s in enumerate(workload.steps)}
    assert floor.shape(name, sizes) == [[index[n] for n in s.needs] for s in workload.steps]


def test_runs_are_interleaved_after_one_warm_up_each() -> None:
    calls: list[tuple[str, int]] = []
    times = {"chronum": 1.0, "doit": 2.0, "floor": 0.5}

    def runner(name: str) -> Callable[[int], float]:
        def run(i: int) -> float:
            calls.append((name, i))
            return times[name] * (10 if i == 0 else i)  # a slow warm-up, then 1x, 2x, 3x
        return run

    samples = bench.interleave([(n, runner(n)) for n in times], 3)
    assert calls == [(n, 0) for n in times] + [(n, i) for i in (1, 2, 3) for n in times]
    assert samples == {"chronum": [1.0, 2.0, 3.0], "doit": [2.0, 4.0, 6.0],
                       "floor": [0.5, 1.0, 1.5]}


def _row(budget: float, against: str | None, **samples: list[float]) -> bench.Row:
    row = bench.Row("W1", "test", "s", budget=budget, against=against, samples=samples)
    row.judge()
    return row


def test_ratio_budgets_use_the_medians() -> None:
    # Medians 0.30 and 0.30: exactly at 1.0x is within budget; one outlier does not decide.
    at = _row(1.0, "doit", chronum=[0.29, 0.30, 9.0], doit=[0.30, 0.31, 0.1])
    assert at.ratio("doit") == pytest.approx(1.0) and at.verdict == "ok"
    over = _row(1.0, "doit", chronum=[0.31, 0.32, 0.33], doit=[0.30, 0.31, 0.30])
    assert over.ratio("doit") == pytest.approx(0.32 / 0.30) and over.verdict == "over"
    w3 = _row(1.2, "asyncio", chronum=[1.1], doit=[5.0], asyncio=[1.0])
    assert w3.verdict == "ok" and _row(1.2, "asyncio", chronum=[1.3], asyncio=[1.0]).passed is False


def test_absolute_budgets_judge_the_value() -> None:
    imported = bench.Row("import", "t", "ms", budget=40.0,
                         samples={"chronum": [80.0], "python": [20.0]}, value=60.0)
    imported.judge()
    assert imported.verdict == "over"
    memory = _row(150.0, None, chronum=[72.0], python=[11.0])
    assert memory.judged() == 72.0 and memory.verdict == "ok"
    assert bench.Row("x", "t", "s", error="boom").verdict == "ERROR"
    assert bench.Row("W0 new", "t", "s", samples={"chronum": [1.0]}).verdict == "-"


def test_a_budget_the_floor_misses_is_flagged() -> None:
    assert _row(1.0, "doit", chronum=[2.0], doit=[1.0], floor=[1.1]).below_floor
    assert not _row(1.0, "doit", chronum=[2.0], doit=[1.0], floor=[0.9]).below_floor


def test_the_table_shows_both_ratios_and_the_verdict() -> None:
    row = _row(1.0, "doit", chronum=[0.5], doit=[1.0], floor=[0.25])
    assert bench.table([row])[2].split() == [
        "W1", "test", "0.500", "s", "1.000", "s", "0.50x", "0.250", "s", "2.00x",
        "<=", "1x", "doit", "ok"]


def test_doit_report_must_list_every_task() -> None:
    workload = wl.fan_in(2)
    bench.check_doit_report(".  s1\n.  s0\n.  join\n", workload)
    with pytest.raises(bench.BenchError, match=r"2 tasks of 3 .*missing join"):
        bench.check_doit_report(".  s0\n.  s1\n", workload)
    with pytest.raises(bench.BenchError, match="3 tasks of 3"):
        bench.check_doit_report(".  s0\n.  s0\n.  join\n-- s1\n", workload)


def test_doit_runs_with_the_flows_parallelism(tmp_path: Path) -> None:
    doit = bench.Doit(tmp_path, backend=None)
    doit._script = tmp_path / "doit"  # as if installed: the command only names the script
    cmd = doit.command(tmp_path / "dodo.py", tmp_path / "db", 3)
    assert cmd[cmd.index("-n") + 1] == "3" and cmd[cmd.index("-P") + 1] == "thread"
    assert "--backend" not in cmd  # doit's own default
    json_doit = bench.Doit(tmp_path, "json")
    json_doit._script = tmp_path / "doit"
    assert json_doit.command(tmp_path / "d.py", tmp_path / "db", 2)[-2:] == ["--backend", "json"]


def test_a_failing_command_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(bench.BenchError, match="exited 3"):
        bench._timed([sys.executable, "-c", "raise SystemExit(3)"], tmp_path)


def test_the_harness_end_to_end_on_its_quickest_rows(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "ENV", dict(bench.ENV))  # main() sets it for its scratch folder
    out = tmp_path / "bench.json"
    code = bench.main(["--quick", "--repeat", "1", "--only", "import,heavy", "--json", str(out)])
    table = capsys.readouterr().out
    assert code == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert [r["name"] for r in report["results"]] == ["import", "heavy"]
    imported = report["results"][0]
    assert len(imported["samples"]["chronum"]) == len(imported["samples"]["python"]) == 1
    assert imported["verdict"] in ("ok", "over")
    assert report["results"][1]["verdict"] == "ok"  # no pandas, IPython, graphviz or dask
    assert "import chronum, added" in table and "<= 40 ms" in table
