"""Step outputs: the ``$CHRONUM_OUTPUT`` file, read as GitHub Actions reads ``$GITHUB_OUTPUT``.

A step that starts a process gets ``CHRONUM_OUTPUT``, the path of a file that does not exist
yet; it appends ``key=value`` lines, or ``key<<DELIM`` ... ``DELIM`` blocks for values of
several lines. An in-process python step calls ``ctx.output(key, value)`` instead. The
engine reads the file when the attempt ends: the outputs are kept with the attempt, reach the
steps that need it as ``CHRONUM_OUT_<STEP>_<KEY>``, and can be tested by ``if:`` conditions.
A step's outputs together are capped (``MAX_BYTES``), so a runaway ``echo`` cannot fill the
database; big data belongs in a file whose path is the output.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Mapping

__all__ = ["MAX_BYTES", "OutputError", "OutputFiles", "check", "env_name", "parse", "read"]

#: The most a step's outputs may hold together, keys and values, in UTF-8 bytes.
MAX_BYTES = 1024 * 1024
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_ENV_CHARS = re.compile(r"[^A-Za-z0-9]")


class OutputError(ValueError):
    """Outputs that cannot be kept: the attempt fails with this message."""


def env_name(step: str, key: str) -> str:
    """``CHRONUM_OUT_<STEP>_<KEY>``: non-alphanumerics become ``_``, letters upper case."""
    return f"CHRONUM_OUT_{_ENV_CHARS.sub('_', step).upper()}_{_ENV_CHARS.sub('_', key).upper()}"


def _key(key: str, where: str) -> str:
    if not _KEY.match(key):
        raise OutputError(f"{where}: invalid output name {key[:40]!r} (use letters, digits, "
                          "'_' and '-', starting with a letter or '_')")
    return key


def parse(text: str) -> dict[str, str]:
    """The outputs written to a ``$CHRONUM_OUTPUT`` file; the last value of a key wins."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    i = 0
    while i < len(lines):
        line = lines[i].removesuffix("\r")
        i += 1
        if not line.strip():
            continue
        where = f"$CHRONUM_OUTPUT line {i}"
        eq, heredoc = line.find("="), line.find("<<")
        if heredoc > 0 and (eq < 0 or heredoc < eq):
            key, delimiter = _key(line[:heredoc], where), line[heredoc + 2:]
            if not delimiter:
                raise OutputError(f"{where}: '{key}<<' needs a delimiter, e.g. {key}<<EOF")
            body: list[str] = []
            while i < len(lines) and lines[i].removesuffix("\r") != delimiter:
                body.append(lines[i].removesuffix("\r"))
                i += 1
            if i >= len(lines):
                raise OutputError(f"{where}: {delimiter!r} never ends the value of {key!r}")
            i += 1
            out[key] = "\n".join(body)
        elif eq > 0:
            out[_key(line[:eq], where)] = line[eq + 1:]
        else:
            raise OutputError(f"{where}: expected 'key=value' or 'key<<DELIMITER', got "
                              f"{line[:40]!r}")
    return out


def check(outputs: Mapping[str, str], where: str = "ctx.output") -> None:
    """Valid names, and within ``MAX_BYTES`` together."""
    size = 0
    for key, value in outputs.items():
        _key(key, where)
        size += len(key.encode("utf-8", "replace")) + len(value.encode("utf-8", "replace"))
    if size > MAX_BYTES:
        raise OutputError(f"the step's outputs hold {_mib(size)}, over the cap of 1 MiB per "
                          "step; write big data to a file and output its path")


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def read(path: str) -> dict[str, str]:
    """The outputs in ``path``; none when the step did not write the file."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES * 2 + 1)
            size = os.fstat(fh.fileno()).st_size
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise OutputError(f"cannot read $CHRONUM_OUTPUT: {exc.strerror or exc}") from None
    if size > MAX_BYTES * 2:  # far past the cap with any framing: do not parse it
        raise OutputError(f"the step wrote {_mib(size)} to $CHRONUM_OUTPUT, over the cap of "
                          "1 MiB per step; write big data to a file and output its path")
    return parse(data.decode("utf-8", "replace"))


class OutputFiles:
    """A private folder, made when a run first needs it, for its attempts' output files."""

    def __init__(self) -> None:
        self._folder: str | None = None
        #: A number per step: a step's name (``process[region=eu]``) is no file name.
        self._numbers: dict[str, int] = {}

    def path(self, step: str, attempt: int) -> str:
        if self._folder is None:
            self._folder = tempfile.mkdtemp(prefix="chronum-out-")
        number = self._numbers.setdefault(step, len(self._numbers))
        return os.path.join(self._folder, f"{number}.{attempt}")

    def discard(self, path: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
