"""The run's ``timeout:`` bounds everything in the run, the handlers that run after
``stopOnFail`` included: real `chronum run` processes, real shell steps, real SQLite."""

from __future__ import annotations

import time

from .conftest import Chronum, pid_alive


def _steps(obj: dict) -> dict[str, tuple[str, str | None]]:
    return {s["step"]: (s["status"], s["reason"]) for s in obj["steps"]}


def test_a_handler_after_stop_on_fail_is_stopped_by_the_run_timeout(chronum: Chronum) -> None:
    chronum.write("f.yaml", """
        name: bounded-handlers
        timeout: 0.8s
        stopOnFail: true
        steps:
          - name: boom
            run: exit 3
          - name: slow-cleanup
            needs: boom
            if: always()
            run: echo $$ > cleanup.pid; sleep 30
          - name: last-word
            needs: boom
            if: always()
            run: echo said > said
          - name: never
            needs: slow-cleanup
            run: echo never
    """)
    chronum.env["CHRONUM_KILL_GRACE"] = "2"
    started = time.monotonic()
    proc = chronum("run", "f.yaml")
    took = time.monotonic() - started
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert took < 15, (took, proc.stdout)  # not the handler's 30 s
    assert "run timed out after 0.8s" in proc.stdout
    obj = chronum.json("show", "last")
    assert obj["status"] == "failed" and obj["reason"] == "run timed out after 0.8s"
    steps = _steps(obj)
    assert steps["boom"][0] == "failed"
    assert steps["slow-cleanup"] == ("cancelled", "run timed out after 0.8s")
    # the handler still pending when the timeout passed gets the kill grace, as documented
    assert steps["last-word"][0] == "succeeded" and (chronum.cwd / "said").exists()
    assert steps["never"][0] in ("upstream_failed", "skipped")
    assert not pid_alive(int((chronum.cwd / "cleanup.pid").read_text()))


def test_handlers_that_end_in_time_leave_the_run_failed_by_its_step(chronum: Chronum) -> None:
    """The timeout only acts when it passes: a quick handler after stopOnFail is untouched."""
    chronum.write("f.yaml", """
        name: quick-handlers
        timeout: 20s
        stopOnFail: true
        steps:
          - name: boom
            run: exit 3
          - name: cleanup
            needs: boom
            if: always()
            run: sleep 0.3; echo done > done
    """)
    proc = chronum("run", "f.yaml")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    obj = chronum.json("show", "last")
    assert obj["status"] == "failed" and not obj["reason"]
    assert _steps(obj)["cleanup"] == ("succeeded", None)
    assert (chronum.cwd / "done").exists()
