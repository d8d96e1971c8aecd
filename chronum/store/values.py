"""Step values kept on disk for ``persist: true`` steps, so a resume in another process has them.

A persisted value lives in the run's folder beside the database,
``<db folder>/runs/<run id>/values/<step>.pickle`` (``.parquet`` for a DataFrame when pyarrow
is installed), written before the step's success is recorded, so a recorded success always has
its value. Which kept step needs its value back on resume is ``chronum.engine.plan``'s decision.

Unpickling runs whatever code the file names, and a project folder (the database and its
``runs/``) may come from someone else: a clone, an archive, a CI artifact. So a pickle is
loaded only when Chronum wrote it for this user: it starts with an HMAC-SHA256 of its bytes
under a key only this user can read (``values.key`` in Chronum's cache folder, made on first
use). Any other pickle (foreign, altered, or kept before values were signed) is treated as
missing, with a warning: the step runs again, as when a value is gone. ``CHRONUM_TRUST_VALUES=1``
loads them anyway, for a folder the user trusts. A parquet file holds data, never code (pyarrow
no longer unpickles extension types), and is read as it is. A run id that could name a folder
outside ``runs/`` (a crafted database) has no values. Files are written readable by their owner
only: a value may hold what a secret protected.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib.util
import logging
import os
import pickle
import secrets
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..model import Flow

__all__ = ["MISSING", "TRUST_ENV", "keeper", "load_value", "save_value", "values_dir"]

logger = logging.getLogger("chronum")

#: What ``load_value`` returns when nothing was kept (a value may itself be None).
MISSING: Any = object()
#: Set to 1 to load pickles Chronum did not sign for this user (see the module docstring).
TRUST_ENV = "CHRONUM_TRUST_VALUES"
#: A signed pickle: this line, the HMAC-SHA256 of the pickle's bytes, then the bytes.
_MAGIC = b"chronum-value-hmac-sha256\n"
_MAC_SIZE = hashlib.sha256().digest_size
_KEY_FILE = "values.key"
_key_cache: list[bytes] = []


def values_dir(db_path: Path, run_id: str) -> Path | None:
    """Where a run keeps its values; None for an in-memory database, or a run id that would
    name a folder outside ``runs/`` (only a crafted database holds one)."""
    if str(db_path) in ("", ":memory:"):
        return None
    if not run_id or "/" in run_id or "\\" in run_id or run_id in (".", "..") or \
            "\0" in run_id:
        return None
    return db_path.parent / "runs" / run_id / "values"


def _key_folder() -> str | None:
    from ..spec._cache import cache_dir  # the one place Chronum's cache folder is decided

    # the key is wanted even when the flow cache is turned off
    return cache_dir({k: v for k, v in os.environ.items() if k != "CHRONUM_FLOW_CACHE"})


def _read_key(path: str) -> bytes | None:
    """The key at ``path`` if only this user can read or write it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            logger.warning("%s is not private to this user (mode %o); values are signed "
                           "with a key of this process only", path, st.st_mode & 0o777)
            return None
        key = os.read(fd, 64)
    finally:
        os.close(fd)
    return key if len(key) >= 32 else None


def _make_key(folder: str, path: str) -> None:
    """Write a new key beside, then link it in: another process sees all of it or none."""
    os.makedirs(folder, mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with open(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def _key() -> bytes:
    """This user's key for signing values: made once, kept in the cache folder (0600)."""
    if _key_cache:
        return _key_cache[0]
    folder = _key_folder()
    key: bytes | None = None
    if folder is not None:
        path = os.path.join(folder, _KEY_FILE)
        if not os.path.lexists(path):
            try:
                _make_key(folder, path)
            except OSError as exc:
                logger.warning("cannot keep the key that signs values in %s (%s); values "
                               "kept now load in this process only", folder, exc)
        key = _read_key(path)
    if key is None:
        key = secrets.token_bytes(32)
    _key_cache.append(key)
    return key


def _mac(data: bytes) -> bytes:
    return hmac.new(_key(), data, hashlib.sha256).digest()


def _trusted() -> bool:
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


def _is_frame(value: Any) -> bool:
    pandas = sys.modules.get("pandas")  # a DataFrame exists only if pandas was imported
    return pandas is not None and isinstance(value, pandas.DataFrame)


def _write(path: Path, write: Callable[[Path], None]) -> None:
    """Write beside, then rename: a killed process never leaves half a value."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_value(folder: Path, step: str, value: Any) -> Path:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if _is_frame(value) and importlib.util.find_spec("pyarrow") is not None:
        path = folder / f"{step}.parquet"
        try:
            _write(path, value.to_parquet)
            return path
        except Exception:  # a frame parquet cannot hold (mixed object columns): pickle it
            pass
    path = folder / f"{step}.pickle"

    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def dump(target: Path) -> None:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as fh:
            fh.write(_MAGIC + _mac(data) + data)

    _write(path, dump)
    return path


def load_value(folder: Path, step: str) -> Any:
    """The kept value, or ``MISSING`` (also for a pickle this user's Chronum did not sign)."""
    parquet = folder / f"{step}.parquet"
    if parquet.exists():
        import pandas as pd

        return pd.read_parquet(parquet)
    path = folder / f"{step}.pickle"
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return MISSING
    head = len(_MAGIC) + _MAC_SIZE
    signed = blob.startswith(_MAGIC) and len(blob) >= head
    data = blob[head:] if signed else blob
    if signed and hmac.compare_digest(blob[len(_MAGIC):head], _mac(data)):
        return pickle.loads(data)
    if _trusted():
        return pickle.loads(data)
    logger.warning("the kept value of step %r in %s was not written by Chronum for this user, "
                   "so it is not loaded (unpickling can run code): the step runs again; set "
                   "%s=1 to load values from a folder you trust", step, path, TRUST_ENV)
    return MISSING


def keeper(flow: Flow, db_path: Path, run_id: str, also: Iterable[str] = ()
           ) -> Callable[[str, Any], None] | None:
    """The engine's ``on_output`` hook for a flow with ``persist`` steps (and the steps
    ``also`` names: cached python steps), else None."""
    persist = {s.name for s in flow.steps if s.options.get("persist")} | set(also)
    folder = values_dir(db_path, run_id)
    if not persist or folder is None:
        return None

    cached = set(also)

    def keep(name: str, value: Any) -> None:
        # a cached step that returned None has nothing to keep: the store notes the None
        if name in persist and not (value is None and name in cached):
            save_value(folder, name, value)

    return keep
