"""`mypy --strict` on a user module: it passes, and steps keep their own signatures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "typed_user.py"


def _mypy(*files: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir",
         str(cache), "--config-file", str(ROOT / "pyproject.toml"), *map(str, files)],
        cwd=ROOT, capture_output=True, text=True, timeout=110)


def test_mypy_strict_passes_and_reveals_the_step_types(tmp_path: Path):
    misuse = tmp_path / "misuse.py"
    misuse.write_text(
        "import chronum\n\nflow = chronum.Flow('m')\n\n\n"
        "@flow.step()\ndef total(numbers: list[int]) -> int:\n    return sum(numbers)\n\n\n"
        "x: str = total([1])\n"
    )
    proc = _mypy(EXAMPLE, misuse, cache=tmp_path / "cache")
    notes = [line.split(": note: ", 1)[1] for line in proc.stdout.splitlines()
             if "typed_user.py" in line and ": note: " in line]
    assert notes == [
        'Revealed type is "def () -> list[int]"',
        'Revealed type is "def (numbers: list[int]) -> int"',
        'Revealed type is "def (total: int, prefix: str =) -> typing.Coroutine[Any, Any, str]"',
        'Revealed type is "str"',
        'Revealed type is "chronum.model.Flow"',
    ]
    errors = [line for line in proc.stdout.splitlines() if ": error: " in line]
    # the only error is the misuse: the return type of a step is known, not Any
    assert len(errors) == 1 and "misuse.py:11" in errors[0], proc.stdout
    assert 'expression has type "int", variable has type "str"' in errors[0]
