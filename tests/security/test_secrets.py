"""An attacker's view of secrets: every side path a secret could leak by, with real runs.

Each test runs ``chronum`` as a subprocess (real shells, real in-process steps, a real SQLite
file), then reads every byte Chronum wrote under the workspace (database and WAL, log files,
``--events-jsonl``, exports) and everything it printed, looking for the secret or one of the
encoded forms a step printed.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import quote

from chronum.engine.masking import MASK, Masker, encoded_forms

SECRET = "hunter2-Zq9/TOKEN+4f1c\"x"
#: Pieces long enough that they cannot appear by chance.
PIECES = (SECRET, SECRET[:11], SECRET[11:])
ENCODED = (base64.b64encode(SECRET.encode()).decode(),
           base64.urlsafe_b64encode(SECRET.encode()).decode(),
           quote(SECRET, safe=""), json.dumps(SECRET)[1:-1])


def _leaks(root: Path, *texts: str) -> list[str]:
    """Where the secret, half of it, or an encoded form appears: files, then texts."""
    needles = (*PIECES, *(e[4:-4] for e in ENCODED))
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix not in (".py", ".yaml", ".pickle"):
            data = path.read_bytes()
            found += [f"{path.relative_to(root)}: {n!r}" for n in needles if n.encode() in data]
    for i, text in enumerate(texts):
        found += [f"output {i}: {n!r}" for n in needles if n in text]
    return found


def _cli(tmp_path: Path, *args: str, secret: str = SECRET) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "API_TOKEN": secret, "CHRONUM_DB": str(tmp_path / "db" / "c.db")}
    return subprocess.run([sys.executable, "-m", "chronum", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_encoded_forms_are_masked_at_every_alignment() -> None:
    mask = Masker([SECRET])
    for before in ("", "a", "ab", "abc"):
        for after in ("", "\n", "xy"):
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                text = encode((before + SECRET + after).encode()).decode()
                masked = mask(text)
                assert MASK in masked
                # what is left decodes to at most two bytes of the secret on either side
                assert len(masked.replace(MASK, "")) <= 8 + 8
    assert mask(quote(SECRET, safe="")) == MASK
    assert mask(json.dumps({"t": SECRET})) == '{"t": "***"}'
    assert encoded_forms("abc") == set()  # too short to mask without blanking noise
    assert Masker(["abcd"])("YWJjZA==") == "YWJjZA=="  # a 4-character value's base64 is kept


FLOW = """
    name: leaky
    secrets: [API_TOKEN]
    params: {p: none}
    steps:
      - name: sh
        run: |
          echo "plain $API_TOKEN"
          echo "stderr $API_TOKEN" >&2
          printf '%s' "$API_TOKEN" | base64
          printf 'x%s' "$API_TOKEN" | base64 -w0; echo
          printf 'xy%s\\n' "$API_TOKEN" | base64 -w0; echo
          python3 encode.py
          sh -c 'echo "grandchild $API_TOKEN"'
          half=$(printf '%s' "$API_TOKEN" | cut -c1-9)
          rest=$(printf '%s' "$API_TOKEN" | cut -c10-)
          printf 'split %s' "$half"; sleep 0.3; printf '%s done\\n' "$rest"
          echo "k=$API_TOKEN" >> "$CHRONUM_OUTPUT"
      - name: py
        executor: python
        call: mod:split_writes
      - name: boom
        executor: python
        call: mod:boom
        continueOnError: true
      - name: again
        run: 'echo "$API_TOKEN"; exit 3'
        retry: 1
        continueOnError: true
      - name: slow
        run: 'echo "$API_TOKEN"; sleep 5'
        timeout: 1
        continueOnError: true
      - name: cond
        needs: sh
        if: steps.sh.outputs.k == params.p
        run: 'true'
"""

MOD = """
import os, sys, time

def split_writes(ctx):
    token = ctx.env["API_TOKEN"]
    sys.stdout.write("py " + token[:9]); sys.stdout.flush(); time.sleep(0.2)
    sys.stdout.write(token[9:] + " end\\n"); sys.stdout.flush()
    os.write(1, ("fd " + token[:5]).encode()); time.sleep(0.2)
    os.write(1, (token[5:] + "\\n").encode())
    ctx.output("tok", token)
    return {"v": token}

def boom(ctx):
    raise ValueError("bad token " + ctx.env["API_TOKEN"])
"""


def test_no_side_path_shows_the_secret(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(textwrap.dedent(FLOW))
    (tmp_path / "mod.py").write_text(MOD)
    (tmp_path / "encode.py").write_text(
        "import os, urllib.parse, json\nt = os.environ['API_TOKEN']\n"
        "print(urllib.parse.quote(t, safe=''))\nprint(json.dumps({'t': t}))\n")
    run = _cli(tmp_path, "run", "flow.yaml", "--events-jsonl", "events.jsonl", "-p",
               f"p={SECRET}")
    assert run.returncode == 0, run.stderr
    texts = [run.stdout, run.stderr]
    for args in (("show", "last", "--format", "json"), ("show", "last"), ("logs", "last"),
                 ("history",), *(("export", what, "--format", fmt)
                                 for what in ("runs", "steps", "attempts", "events")
                                 for fmt in ("csv", "jsonl"))):
        shown = _cli(tmp_path, *args)
        assert shown.returncode == 0, (args, shown.stderr)
        texts += [shown.stdout, shown.stderr]
    assert _leaks(tmp_path, *texts) == []
    logs = _cli(tmp_path, "logs", "last").stdout
    for line in ("plain ***", "stderr ***", "grandchild ***", "split *** done", "py *** end",
                 "fd ***", "ValueError: bad token ***"):
        assert line in logs, line
    assert '{"t": "***"}' in logs


def test_a_secret_param_is_masked_in_the_cache_reason(tmp_path: Path) -> None:
    """The reason a cached step runs again quotes a changed param: old and new are masked."""
    (tmp_path / "flow.yaml").write_text(textwrap.dedent("""
        name: cached
        secrets: [API_TOKEN]
        cache: true
        params: {p: none}
        steps:
          - name: a
            run: echo "$CHRONUM_PARAM_P"
    """))
    first = _cli(tmp_path, "run", "flow.yaml", "-p", f"p={SECRET}")
    assert first.returncode == 0, first.stderr
    other = "another-Secret-VALUE-77"
    second = _cli(tmp_path, "run", "flow.yaml", "-p", f"p={other}", "--events-jsonl",
                  "events.jsonl", secret=other)
    assert second.returncode == 0, second.stderr
    shown = _cli(tmp_path, "show", "last", secret=other).stdout
    assert "param p changed (*** → ***)" in shown
    for text in (second.stdout, shown):
        assert other not in text and SECRET not in text
    for path in tmp_path.rglob("*"):  # the database and its WAL, the events file, the logs
        if path.is_file() and path.suffix != ".yaml":
            data = path.read_bytes()
            assert other.encode() not in data and SECRET.encode() not in data, path
