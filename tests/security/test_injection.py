"""Expression injection, GitHub Actions' classic hole: a value (a step's output, a fan-out
item, a param) that reaches a shell step must stay data, never become shell text.

Chronum never substitutes values into ``run:`` text: they reach a step as environment
variables (``CHRONUM_OUT_<STEP>_<KEY>``, ``CHRONUM_ITEM``, ``CHRONUM_MATRIX_<KEY>``,
``CHRONUM_PARAM_<NAME>``), so ``x; touch pwned`` and ``$(touch pwned)`` are strings the shell
is handed, not code it parses. Each test runs real shells and looks for the files an injected
command would have made.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

#: What a hostile value looks like; each would create a ``pwned_*`` file if parsed as shell.
HOSTILE = ("x; touch pwned_semicolon", "$(touch pwned_subst)", "`touch pwned_backtick`",
           "' ; touch pwned_quote ; '", "\" && touch pwned_dquote && \"",
           "x\ntouch pwned_newline")


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHRONUM_DB": str(tmp_path / "db" / "c.db")}
    return subprocess.run([sys.executable, "-m", "chronum", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def _pwned(tmp_path: Path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("pwned*"))


def test_outputs_items_and_params_never_become_shell_text(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text(f"def items():\n    return {list(HOSTILE)!r}\n")
    (tmp_path / "write.py").write_text(textwrap.dedent(f"""
        import os
        values = {list(HOSTILE)!r}
        with open(os.environ["CHRONUM_OUTPUT"], "a") as out:
            for i, value in enumerate(values):
                if "\\n" in value:
                    out.write(f"v{{i}}<<EOF\\n{{value}}\\nEOF\\n")
                else:
                    out.write(f"v{{i}}={{value}}\\n")
    """))
    (tmp_path / "flow.yaml").write_text(textwrap.dedent(f"""
        name: inject
        params: {{p: none, list: '[]'}}
        steps:
          - name: produce
            run: python3 write.py
          - name: consume
            needs: produce
            if: steps.produce.outputs.v0 != 'x' or steps.produce.outputs.v1 == '$(true)'
            run: |
              echo $CHRONUM_OUT_PRODUCE_V0 $CHRONUM_OUT_PRODUCE_V1 $CHRONUM_OUT_PRODUCE_V2
              echo "$CHRONUM_OUT_PRODUCE_V3" "$CHRONUM_OUT_PRODUCE_V4" "$CHRONUM_OUT_PRODUCE_V5"
              echo "param: $CHRONUM_PARAM_P"
          - name: gen
            executor: python
            call: mod:items
          - name: each
            foreach: {{from: gen}}
            run: echo "item $CHRONUM_ITEM" && echo item $CHRONUM_ITEM
          - name: each_param
            foreach: {{param: list}}
            run: echo "item $CHRONUM_ITEM"
          - name: literal
            foreach: {json.dumps(list(HOSTILE))}
            run: echo "item $CHRONUM_ITEM"
          - name: grid
            matrix: {{v: ['$(touch pwned_matrix)', 'a;touch pwned_m2']}}
            run: echo "matrix $CHRONUM_MATRIX_V"
    """))
    run = _cli(tmp_path, "run", "flow.yaml", "-p", "p=$(touch pwned_param); touch pwned_p2",
               "-p", f"list={json.dumps(list(HOSTILE))}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert _pwned(tmp_path) == []
    logs = _cli(tmp_path, "logs", "last").stdout
    assert "$(touch pwned_subst)" in logs and "x; touch pwned_semicolon" in logs
    assert "param: $(touch pwned_param); touch pwned_p2" in logs
    assert "matrix $(touch pwned_matrix)" in logs
    assert logs.count("item `touch pwned_backtick`") == 4  # two from gen, one each elsewhere


def test_a_hostile_value_from_a_call_step_output_stays_data(tmp_path: Path) -> None:
    """``ctx.output`` and a returned dict reach a shell step the same way."""
    (tmp_path / "mod.py").write_text(
        "def make(ctx):\n    ctx.output('cmd', '$(touch pwned_ctx)')\n"
        "    return None\n")
    (tmp_path / "flow.yaml").write_text(textwrap.dedent("""
        name: inject2
        steps:
          - {name: make, executor: python, call: "mod:make"}
          - name: use
            needs: make
            run: eval echo "safe" && echo $CHRONUM_OUT_MAKE_CMD
    """))
    run = _cli(tmp_path, "run", "flow.yaml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert _pwned(tmp_path) == []
    assert "$(touch pwned_ctx)" in _cli(tmp_path, "logs", "last", "use").stdout
