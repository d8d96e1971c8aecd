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


def test_mypy_rejects_a_misspelt_run_option_in_every_verb(tmp_path: Path):
    user = tmp_path / "options.py"
    user.write_text(
        "import chronum\n\nflow = chronum.Flow('m')\n\n\n"
        "async def main() -> None:\n"
        "    chronum.run('f.yaml', max_parallel=2, db='x.db')\n"
        "    chronum.run('f.yaml', max_paralel=2)\n"
        "    await chronum.arun('f.yaml', stop_on_fial=True)\n"
        "    chronum.resume('last', max_paralel=2)\n"
        "    flow.run(max_paralel=2)\n"
        "    chronum.run('f.yaml', max_parallel='2')\n"
    )
    proc = _mypy(user, cache=tmp_path / "cache")
    errors = [line for line in proc.stdout.splitlines() if ": error: " in line]
    assert [line.split(":")[1] for line in errors] == ["8", "9", "10", "11", "12"], proc.stdout
    assert 'Unexpected keyword argument "max_paralel"' in errors[0]
    assert 'did you mean "max_parallel"' in errors[0]
    assert "int | None" in errors[-1]


def test_a_misspelt_run_option_fails_at_the_call_before_anything_runs(tmp_path: Path):
    import pytest

    import chronum

    with pytest.raises(TypeError, match="unknown run option 'max_paralel'; did you mean "
                                        "'max_parallel'"):
        chronum.run(tmp_path / "missing.yaml", max_paralel=2)  # type: ignore[call-arg]
    assert not (tmp_path / ".chronum").exists()
