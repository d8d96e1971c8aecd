"""Hostile kept values: a project folder from someone else must not run code when resumed.

A ``persist: true`` value is a pickle beside the database, and unpickling runs whatever the file
names. Chronum signs the pickles it writes with a key only this user can read; the tests swap
a real run's pickle for one that would create a file when loaded, then resume the run with the
real ``chronum`` command and check that nothing ran and the step simply ran again.
"""

from __future__ import annotations

import os
import pickle
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

from chronum.store.values import MISSING, load_value, save_value, values_dir


class _Evil:
    """Pickles as a call of ``os.system`` that creates ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.path}",)


FLOW = """
    name: kept
    steps:
      - name: make
        executor: python
        call: mod:make
        persist: true
      - name: use
        executor: python
        call: mod:use
        needs: make
"""
MOD = """
import os
def make():
    print("make ran")
    return {"rows": 3}
def use(make):
    if os.path.exists("fail"):
        raise RuntimeError("not yet")
    print("use got", make)
"""


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "CHRONUM_DB": str(tmp_path / "db" / "c.db"), **env}
    full.pop("CHRONUM_TRUST_VALUES", None)
    full.update(env)
    return subprocess.run([sys.executable, "-m", "chronum", *args], cwd=tmp_path, env=full,
                          capture_output=True, text=True, timeout=120)


def _failed_run(tmp_path: Path, **env: str) -> Path:
    """A run whose ``make`` kept its value and whose ``use`` failed: the pickle's path."""
    (tmp_path / "flow.yaml").write_text(textwrap.dedent(FLOW))
    (tmp_path / "mod.py").write_text(MOD)
    (tmp_path / "fail").write_text("")
    run = _cli(tmp_path, "run", "flow.yaml", **env)
    assert run.returncode == 1, run.stdout + run.stderr
    (tmp_path / "fail").unlink()
    [pickled] = (tmp_path / "db" / "runs").rglob("make.pickle")
    return pickled


def test_a_kept_value_is_private_and_resumes(tmp_path: Path) -> None:
    pickled = _failed_run(tmp_path)
    assert stat.S_IMODE(pickled.stat().st_mode) == 0o600
    assert stat.S_IMODE(pickled.parent.stat().st_mode) == 0o700
    resumed = _cli(tmp_path, "resume", "last")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "use got {'rows': 3}" in resumed.stdout and "make ran" not in resumed.stdout


def test_a_foreign_pickle_is_not_loaded_and_the_step_runs_again(tmp_path: Path) -> None:
    pickled = _failed_run(tmp_path)
    marker = tmp_path / "pwned"
    pickled.write_bytes(pickle.dumps(_Evil(marker)))
    resumed = _cli(tmp_path, "resume", "last")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert not marker.exists()
    assert "was not written by Chronum for this user" in resumed.stderr
    assert "CHRONUM_TRUST_VALUES=1" in resumed.stderr
    assert "make ran" in resumed.stdout and "use got {'rows': 3}" in resumed.stdout


def test_a_pickle_signed_by_another_key_or_altered_is_refused(tmp_path: Path) -> None:
    pickled = _failed_run(tmp_path)
    data = bytearray(pickled.read_bytes())
    data[-3] ^= 0x01  # one bit of the pickle changed after signing
    pickled.write_bytes(bytes(data))
    resumed = _cli(tmp_path, "resume", "last")
    assert "was not written by Chronum for this user" in resumed.stderr
    assert "make ran" in resumed.stdout

    # a folder from another user: the run kept its value under their key
    other = tmp_path / "other"
    other.mkdir()
    _failed_run(other, CHRONUM_CACHE_DIR=str(tmp_path / "their-cache"))
    resumed = _cli(other, "resume", "last")
    assert resumed.returncode == 0, resumed.stderr
    assert "was not written by Chronum for this user" in resumed.stderr
    assert "make ran" in resumed.stdout


def test_trust_env_loads_a_foreign_value_the_user_vouches_for(tmp_path: Path) -> None:
    pickled = _failed_run(tmp_path)
    pickled.write_bytes(pickle.dumps({"rows": 7}))  # unsigned, e.g. kept by an older Chronum
    resumed = _cli(tmp_path, "resume", "last", CHRONUM_TRUST_VALUES="1")
    assert resumed.returncode == 0, resumed.stderr
    assert "use got {'rows': 7}" in resumed.stdout and "make ran" not in resumed.stdout


def test_a_crafted_run_id_names_no_folder_outside_runs(tmp_path: Path) -> None:
    db = tmp_path / "db" / "c.db"
    for run_id in ("../../etc", "..", "a/b", "a\\b", ""):
        assert values_dir(db, run_id) is None
    folder = values_dir(db, "3fa2c1")
    assert folder == tmp_path / "db" / "runs" / "3fa2c1" / "values"
    save_value(folder, "x", [1, 2])
    assert load_value(folder, "x") == [1, 2]
    (folder / "y.pickle").write_bytes(pickle.dumps(_Evil(tmp_path / "pwned")))
    assert load_value(folder, "y") is MISSING and not (tmp_path / "pwned").exists()


def test_the_key_is_private_to_the_user(tmp_path: Path) -> None:
    """The key is made once, readable by its owner only, and a key others could read is not
    used (another user could sign values with it)."""
    cache = tmp_path / "cache"
    code = ("from pathlib import Path; from chronum.store.values import save_value, load_value;"
            "p = save_value(Path('v'), 'x', 42); print(load_value(Path('v'), 'x'))")
    env = {**os.environ, "CHRONUM_CACHE_DIR": str(cache)}
    first = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert first.stdout.strip() == "42", first.stderr
    key = cache / "values.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    key.chmod(0o644)
    again = subprocess.run(
        [sys.executable, "-c", "from pathlib import Path; from chronum.store.values import "
         "load_value; print(load_value(Path('v'), 'x'))"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60)
    assert "is not private to this user" in again.stderr
    assert "was not written by Chronum for this user" in again.stderr
    assert "42" not in again.stdout
