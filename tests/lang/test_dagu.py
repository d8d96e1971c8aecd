"""dagu's scheduler cases, translated into Chronum flows, run by the real `chronum` command.

Each test runs real shell processes, records into a real SQLite file and reads the run back
the way a user does (`chronum show --format json`, `chronum history`, `chronum logs`).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from .conftest import Chronum, pid_alive, wait_for


def states(obj: dict) -> dict[str, str]:
    return {s["step"]: s["status"] for s in obj["steps"]}


def reasons(obj: dict) -> dict[str, str | None]:
    return {s["step"]: s["reason"] for s in obj["steps"]}


# -- errexit ---------------------------------------------------------------------------------


def test_errexit_a_failing_middle_line_fails_the_step(chronum: Chronum) -> None:
    chronum.write("f.yaml", """
        name: errexit
        steps:
          - name: sh
            run: |
              echo before
              false
              echo after
          - name: opt-out
            run: |
              set +e
              false
              echo still here
          - name: pipefail
            shell: bash
            run: |
              false | true
              echo after pipe
          - name: plain-pipe
            run: false | true
    """)
    proc = chronum("run", "f.yaml", "--format", "json")
    obj = json.loads(proc.stdout)
    assert states(obj) == {"sh": "failed", "opt-out": "succeeded", "pipefail": "failed",
                           "plain-pipe": "succeeded"}
    assert {s["step"]: s["exit_code"] for s in obj["steps"]}["sh"] == 1
    log = chronum("logs", "last", "sh").stdout
    assert "before" in log and "after" not in log
    assert "still here" in chronum("logs", "last", "opt-out").stdout
    assert "after pipe" not in chronum("logs", "last", "pipefail").stdout


# -- outputs ---------------------------------------------------------------------------------


def test_outputs_pass_between_shell_steps_and_to_python(chronum: Chronum) -> None:
    chronum.write("steps.py", """
        def total(produce):
            return int(produce["rows"]) + len(produce["note"].splitlines())
    """)
    chronum.write("f.yaml", """
        name: outputs
        steps:
          - name: produce
            run: |
              echo "rows=42" >> "$CHRONUM_OUTPUT"
              echo "eq=a=b" >> "$CHRONUM_OUTPUT"
              printf 'note<<END\\nline one\\nline two\\nEND\\n' >> "$CHRONUM_OUTPUT"
          - name: consume
            needs: produce
            run: |
              test "$CHRONUM_OUT_PRODUCE_ROWS" = 42
              test "$CHRONUM_OUT_PRODUCE_EQ" = a=b
              echo "got: $CHRONUM_OUT_PRODUCE_NOTE"
              echo "double=$((CHRONUM_OUT_PRODUCE_ROWS * 2))" >> "$CHRONUM_OUTPUT"
          - name: total
            executor: python
            call: steps:total
            needs: produce
    """)
    proc = chronum("run", "f.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    obj = chronum.json("show", "last")
    assert obj["outputs"] == {
        "produce": {"rows": "42", "eq": "a=b", "note": "line one\nline two"},
        "consume": {"double": "84"},
    }
    assert "got: line one\nline two" in chronum("logs", "last", "consume").stdout
    text = chronum("show", "last").stdout
    assert "consume.outputs.double = 84" in text
    assert "produce.outputs.note = 'line one\\nline two'" in text


def test_outputs_over_the_cap_and_bad_lines_fail_the_step(chronum: Chronum) -> None:
    chronum.write("f.yaml", """
        name: cap
        steps:
          - name: huge
            run: |
              head -c 1100000 /dev/zero | tr '\\0' x | sed 's/^/big=/' >> "$CHRONUM_OUTPUT"
          - name: bad
            run: echo "no equals sign" >> "$CHRONUM_OUTPUT"
          - name: open
            run: printf 'v<<EOF\\nnever closed\\n' >> "$CHRONUM_OUTPUT"
    """)
    obj = json.loads(chronum("run", "f.yaml", "--format", "json").stdout)
    assert states(obj) == {"huge": "failed", "bad": "failed", "open": "failed"}
    why = reasons(obj)
    assert why["huge"] == ("the step's outputs hold 1.0 MiB, over the cap of 1 MiB per step; "
                           "write big data to a file and output its path")
    assert why["bad"] == ("$CHRONUM_OUTPUT line 1: expected 'key=value' or "
                          "'key<<DELIMITER', got 'no equals sign'")
    assert why["open"] == "$CHRONUM_OUTPUT line 1: 'EOF' never ends the value of 'v'"


def test_a_secret_written_to_an_output_is_masked(chronum: Chronum) -> None:
    chronum.write("f.yaml", """
        name: masked
        secrets: [API_TOKEN]
        steps:
          - name: leak
            run: echo "token=$API_TOKEN" >> "$CHRONUM_OUTPUT"
          - name: read
            needs: leak
            run: echo "seen $CHRONUM_OUT_LEAK_TOKEN"
    """)
    chronum.env["API_TOKEN"] = "s3cret-value-123"
    assert chronum("run", "f.yaml").returncode == 0
    obj = chronum.json("show", "last")
    assert obj["outputs"]["leak"] == {"token": "***"}
    assert "s3cret" not in chronum.db.read_bytes().decode("latin-1")
    assert "seen ***" in chronum("logs", "last", "read").stdout


# -- if: ---------------------------------------------------------------------------------------


def test_if_skips_a_step_and_its_dependents(chronum: Chronum) -> None:
    chronum.write("f.yaml", """
        name: cond
        params: {mode: quick}
        steps:
          - name: produce
            run: echo "rows=42" >> "$CHRONUM_OUTPUT"
          - name: full
            needs: produce
            if: params.mode == 'full'
            run: echo full
          - name: after-full
            needs: full
            run: echo after
          - name: big
            needs: produce
            if: steps.produce.outputs.rows > 40
            run: echo big
          - name: report
            needs: [full, big]
            if: always()
            run: echo "full=$CHRONUM_OUT_FULL_X"
    """)
    proc = chronum("run", "f.yaml")
    assert proc.returncode == 0, proc.stdout
    assert "[full] skipped: condition false: params.mode == 'full'" in proc.stdout
    obj = chronum.json("show", "last")
    assert states(obj) == {"produce": "succeeded", "full": "skipped",
                           "after-full": "skipped", "big": "succeeded", "report": "succeeded"}
    assert reasons(obj)["after-full"] == "upstream full skipped"
    assert obj["status"] == "succeeded"
    # the same flow with the param that makes the condition hold
    assert chronum("run", "f.yaml", "-p", "mode=full").returncode == 0
    assert states(chronum.json("show", "last"))["after-full"] == "succeeded"


def test_failure_handlers_run_only_after_a_failure(chronum: Chronum) -> None:
    chronum.write("f.yaml", """
        name: handlers
        steps:
          - name: work
            run: exit 3
          - name: publish
            needs: work
            run: echo publish
          - name: notify
            needs: publish
            if: failure()
            run: echo "notify after failure"
          - name: on-success
            needs: work
            if: success()
            run: echo never
          - name: status-check
            needs: work
            if: steps.work.status == 'failed'
            run: echo "work failed"
    """)
    proc = chronum("run", "f.yaml")
    assert proc.returncode == 1
    obj = chronum.json("show", "last")
    assert states(obj) == {"work": "failed", "publish": "upstream_failed",
                           "notify": "succeeded", "on-success": "skipped",
                           "status-check": "succeeded"}
    assert reasons(obj)["on-success"] == "condition false: success()"
    assert obj["status"] == "failed"  # a handler does not make a failed run succeed
    assert "notify after failure" in chronum("logs", "last", "notify").stdout


def test_handlers_run_after_stop_on_fail(chronum: Chronum) -> None:
    chronum.write("f.yaml", """
        name: stop
        stopOnFail: true
        maxParallel: 2
        steps:
          - name: slow
            run: sleep 30
          - name: bad
            run: exit 1
          - name: cleanup
            needs: [slow, bad]
            if: always()
            run: echo cleaned
    """)
    started = time.monotonic()
    proc = chronum("run", "f.yaml")
    assert proc.returncode == 1 and time.monotonic() - started < 20
    obj = chronum.json("show", "last")
    assert states(obj) == {"slow": "cancelled", "bad": "failed", "cleanup": "succeeded"}


# -- continueOn -----------------------------------------------------------------------------


def test_continue_on_error_with_exit_codes(chronum: Chronum) -> None:
    chronum.write("f.yaml", """
        name: continue
        steps:
          - name: flaky
            run: |
              n=$(cat count 2>/dev/null || echo 0); echo $((n + 1)) > count
              exit 75
            retry: {limit: 2, exitCodes: [75], backoff: {base: 0}}
            continueOnError: true
          - name: other
            run: exit 4
            retry: {limit: 3, exitCodes: [75], backoff: {base: 0}}
            continueOnError: true
          - name: after
            needs: [flaky, other]
            run: echo after
    """)
    proc = chronum("run", "f.yaml")
    assert proc.returncode == 0, proc.stdout
    assert "succeeded with 2 failures (continued)" in proc.stdout
    obj = chronum.json("show", "last")
    assert states(obj) == {"flaky": "failed", "other": "failed", "after": "succeeded"}
    attempts = {s["step"]: s["attempts"] for s in obj["steps"]}
    assert attempts == {"flaky": 3, "other": 1, "after": 1}  # 4 is not a code to retry
    assert (chronum.cwd / "count").read_text().strip() == "3"
    assert obj["n_continued"] == 2
    [row] = chronum.json("history")[:1]
    assert (row["status"], row["n_failed"], row["n_continued"]) == ("succeeded", 2, 2)
    assert "succeeded with 2 failures (continued)" in chronum("show", "last").stdout


def test_a_run_where_every_step_failed_fails_even_with_continue(chronum: Chronum) -> None:
    chronum.write("f.yaml", """
        name: allfail
        steps:
          - name: a
            run: exit 1
            continueOnError: true
          - name: b
            needs: a
            run: exit 2
            continueOnError: true
    """)
    proc = chronum("run", "f.yaml")
    assert proc.returncode == 1
    assert chronum.json("show", "last")["status"] == "failed"


# -- timeouts -------------------------------------------------------------------------------


def test_run_timeout_stops_the_run_and_runs_cleanup(chronum: Chronum) -> None:
    chronum.write("f.yaml", """
        name: bounded
        timeout: 1
        steps:
          - name: long
            run: echo $$ > long.pid; sleep 60
          - name: never
            needs: long
            run: echo never
          - name: cleanup
            needs: long
            if: always()
            run: echo cleaned > cleaned
    """)
    started = time.monotonic()
    proc = chronum("run", "f.yaml")
    took = time.monotonic() - started
    assert proc.returncode == 1 and took < 15, (took, proc.stdout)
    assert "failed in" in proc.stdout and "run timed out after 1s" in proc.stdout
    obj = chronum.json("show", "last")
    assert obj["status"] == "failed" and obj["reason"] == "run timed out after 1s"
    assert states(obj) == {"long": "cancelled", "never": "skipped", "cleanup": "succeeded"}
    assert reasons(obj)["long"] == "run timed out after 1s"
    assert (chronum.cwd / "cleaned").exists()
    assert not pid_alive(int((chronum.cwd / "long.pid").read_text()))


def test_step_timeout_is_per_attempt_and_on_timeout_false_stops_retries(
        chronum: Chronum) -> None:
    chronum.write("f.yaml", """
        name: steptimeout
        steps:
          - name: retried
            run: sleep 5
            timeout: 0.3
            retry: {limit: 1, backoff: {base: 0}}
          - name: not-retried
            run: sleep 5
            timeout: 0.3
            retry: {limit: 3, onTimeout: false, backoff: {base: 0}}
    """)
    obj = json.loads(chronum("run", "f.yaml", "--format", "json").stdout)
    got = {s["step"]: (s["status"], s["attempts"], s["exit_code"]) for s in obj["steps"]}
    assert got == {"retried": ("failed", 2, 124), "not-retried": ("failed", 1, 124)}


# -- Ctrl-C ---------------------------------------------------------------------------------


def test_always_cleanup_runs_after_ctrl_c(chronum: Chronum, tmp_path: Path) -> None:
    chronum.write("f.yaml", """
        name: interrupted
        steps:
          - name: serve
            run: echo $$ > serve.pid; sleep 60 & echo $! > child.pid; wait
          - name: use
            needs: serve
            run: echo never
          - name: teardown
            needs: serve
            if: always()
            run: echo "torn down" > torn
          - name: on-cancel
            needs: serve
            if: cancelled()
            run: echo "the run was cancelled"
          - name: on-success-only
            needs: serve
            if: success()
            run: echo never
    """)
    proc = chronum.popen("run", "f.yaml")
    try:
        wait_for(lambda: (tmp_path / "child.pid").exists()
                 and (tmp_path / "child.pid").read_text().strip() != "")
        pids = [int((tmp_path / n).read_text()) for n in ("serve.pid", "child.pid")]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert (tmp_path / "torn").read_text() == "torn down\n"
    obj = chronum.json("show", "last")
    assert obj["status"] == "cancelled"
    assert states(obj) == {"serve": "cancelled", "use": "skipped", "teardown": "succeeded",
                           "on-cancel": "succeeded", "on-success-only": "skipped"}
    assert reasons(obj)["on-success-only"] == "condition false: success()"
    assert "the run was cancelled" in chronum("logs", "last", "on-cancel").stdout
    wait_for(lambda: not any(pid_alive(p) for p in pids), timeout=10)
    assert os.path.exists(tmp_path / "state" / "runs.db")


def test_resume_hands_kept_outputs_to_env_and_conditions(chronum: Chronum) -> None:
    chronum.write("f.yaml", """
        name: resumed
        steps:
          - name: produce
            run: echo "rows=7" >> "$CHRONUM_OUTPUT"
          - name: gate
            needs: produce
            if: steps.produce.outputs.rows == 7
            run: test -e ok
          - name: flaky
            needs: gate
            run: test -e ok2
          - name: final
            needs: [flaky, produce]
            run: echo "$CHRONUM_OUT_PRODUCE_ROWS" > seen
    """)
    assert chronum("run", "f.yaml").returncode == 1
    (chronum.cwd / "ok").touch()
    assert chronum("resume", "last").returncode == 1  # gate ran on the kept output; flaky not
    assert states(chronum.json("show", "last"))["gate"] == "succeeded"
    (chronum.cwd / "ok2").touch()
    proc = chronum("resume", "last")  # produce is now kept from the first run, via the second
    assert proc.returncode == 0, proc.stdout + proc.stderr
    obj = chronum.json("show", "last")
    assert states(obj) == {"produce": "cached", "gate": "cached", "flaky": "succeeded",
                           "final": "succeeded"}
    assert (chronum.cwd / "seen").read_text() == "7\n"
