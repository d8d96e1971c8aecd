"""``chronum validate`` checks ``call:`` steps too: the function imports, its parameters are
fed by steps in ``needs``; each problem at its ``call:`` line."""

from __future__ import annotations

from .conftest import Chronum


def test_validate_finds_calls_that_would_fail_at_run_time(chronum: Chronum):
    chronum.write("steps_mod.py", """
        def tidy(raw):
            return raw
    """)
    chronum.write("flow.yaml", """
        name: calls
        steps:
          - name: raw
            executor: python
            call: json:lods
          - name: tidy
            executor: python
            call: steps_mod:tidy
    """)
    proc = chronum("validate", "flow.yaml")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "flow.yaml:5:5: steps[0].call: module 'json' has no attribute 'lods' "
        "(did you mean 'loads'?)",
        "flow.yaml:8:5: steps[1].call: steps_mod:tidy: parameter 'raw' takes the value of "
        "step 'raw', which is not in needs (add it: needs: [raw])",
        "2 problems found",
    ]
