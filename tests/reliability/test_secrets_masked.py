"""``secrets:``: values come from the environment, reach the step, and never reach a file.

The end-to-end test runs a real ``chronum run`` whose steps print the secret on stdout and
stderr and fail with it in their error, then reads every byte Chronum wrote (the SQLite file
and its WAL, the log files, ``--events-jsonl``, the CLI's own output) looking for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import chronum
from chronum.engine.masking import MASK, Masker
from chronum.errors import SpecError
from chronum.spec import loads

SECRET = "hunter2-Zq9-TOKEN"


def test_masker_replaces_every_value_longest_first() -> None:
    mask = Masker(["abcd", "abcdefgh", "xyz", "first\nlines"])
    assert mask("x abcdefgh y abcd z xyz") == f"x {MASK} y {MASK} z xyz"  # "xyz": too short
    assert mask("first and lines") == f"{MASK} and {MASK}"
    assert mask("a.b*c") == "a.b*c"
    assert not Masker(["", "abc"])
    assert Masker([])("abcd") == "abcd"


def test_secrets_are_names_of_environment_variables() -> None:
    flow = loads(textwrap.dedent("""
        name: f
        secrets: [API_TOKEN]
        steps:
          - name: a
            run: "true"
            secrets: DB_PASSWORD
    """), filename="f.yaml")
    assert flow.secrets == ("API_TOKEN",)
    assert flow.steps[0].secrets == ("DB_PASSWORD",)
    with pytest.raises(SpecError) as info:
        loads("name: f\nsecrets: [1, 'bad-name']\nsteps: []\n", filename="f.yaml")
    assert [str(p) for p in info.value.problems] == [
        "f.yaml:2:11: secrets[0]: expected an environment variable name, got an integer 1",
        "f.yaml:2:14: secrets[1]: invalid environment variable name 'bad-name' (use letters, "
        "digits and '_', not starting with a digit)",
    ]


def _everything_written(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_secret_is_given_to_the_step_and_masked_in_everything_written(tmp_path: Path) -> None:
    (tmp_path / "boom.py").write_text(textwrap.dedent("""
        import os

        def boom():
            print("token is", os.environ["API_TOKEN"])
            raise ValueError("refused " + os.environ["API_TOKEN"])
    """))
    (tmp_path / "f.yaml").write_text(textwrap.dedent("""
        name: leaky
        secrets: [API_TOKEN]
        steps:
          - name: shout
            run: |
              echo "out $API_TOKEN"
              echo "err $API_TOKEN" >&2
              printf %s "$API_TOKEN" | sha256sum > got.txt
          - name: fail
            executor: python
            call: boom:boom
            retry: {limit: 1, backoff: {base: 0}}
            continueOnError: true
          - name: unset
            run: "true"
            secrets: [NOT_SET_ANYWHERE]
            continueOnError: true
    """))
    env = {**os.environ, "API_TOKEN": SECRET, "CHRONUM_DB": str(tmp_path / "db" / "c.db")}
    env.pop("NOT_SET_ANYWHERE", None)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "chronum", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)

    ran = cli("run", "f.yaml", "--events-jsonl", "events.jsonl")
    outputs = [ran, cli("show", "last", "--format", "json"), cli("logs", "last"),
               cli("history", "--format", "json")]
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    assert (tmp_path / "got.txt").read_text().split()[0] == digest  # the step had the value

    shown = json.loads(outputs[1].stdout)
    by_step = {s["step"]: s for s in shown["steps"]}
    assert by_step["shout"]["status"] == "succeeded"
    assert by_step["fail"]["status"] == "failed"
    assert by_step["fail"]["reason"] == f"ValueError: refused {MASK}"
    assert (by_step["unset"]["status"], by_step["unset"]["reason"]) == (
        "failed", "secret 'NOT_SET_ANYWHERE' is not set in the environment")
    assert f"out {MASK}" in outputs[2].stdout and f"err {MASK}" in outputs[2].stdout
    assert f"token is {MASK}" in outputs[2].stdout

    written = _everything_written(tmp_path)
    assert any(name.endswith(".log") for name in written)
    assert "events.jsonl" in written and any(name.startswith("db") for name in written)
    for name, data in written.items():
        assert SECRET.encode() not in data, f"the secret was written to {name}"
    for proc in outputs:
        assert SECRET not in proc.stdout + proc.stderr


def test_subscribers_and_the_notebook_view_see_masked_text(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", SECRET)
    flow = loads(textwrap.dedent("""
        name: nb
        steps:
          - name: a
            run: echo "$API_TOKEN" && exit 4
            secrets: [API_TOKEN]
    """), filename="nb.yaml")
    seen: list[str] = []
    run = chronum.run(flow, db=tmp_path / "c.db",
                             subscribers=[lambda e: seen.append(json.dumps(e.to_dict()))])
    assert run.status == "failed"
    assert any(MASK in line for line in seen)
    assert not any(SECRET in line for line in seen)
    bundle = run._repr_mimebundle_()
    assert SECRET not in json.dumps(bundle, default=str)
