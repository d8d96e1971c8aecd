"""Observers a run loads by name: the ``chronum.subscribers`` entry point group.

``CHRONUM_SUBSCRIBERS=otel,...`` (any run: the CLI, a notebook, a script) and
``chronum run --subscriber NAME`` name them, so a run feeds an exporter without Python glue.
An entry point names a factory: called with no arguments once per run, it returns the
subscriber (a callable taking an event), which may have ``close()``; the session calls it once
the run is over and recorded, so an exporter flushes before the process exits. Chronum's own
(``otel``) register through the same group in ``pyproject.toml``.

Nothing is looked up unless a name is given: reading the installed packages' entry points is
not free, and most runs name none. Chronum's own entry points are read first, straight from
its ``entry_points.txt``, and ``importlib.metadata`` asked only for a name they lack: importing
it and reading every installed package's metadata costs a short run more than the built-in
subscriber it would find. So a plugin cannot take the name of a built-in.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import UsageError
from .eventbus import Subscriber

__all__ = ["ENV", "GROUP", "close", "load", "names"]

GROUP = "chronum.subscribers"
ENV = "CHRONUM_SUBSCRIBERS"

logger = logging.getLogger("chronum")


def names(given: Iterable[str] = (), environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """The names ``given`` then those of ``$CHRONUM_SUBSCRIBERS``, each once, in order."""
    found: list[str] = []
    for name in (*given, *environ.get(ENV, "").split(",")):
        name = name.strip()
        if name and name not in found:
            found.append(name)
    return tuple(found)


def load(wanted: Sequence[str]) -> list[Subscriber]:
    """One subscriber per name, made by its entry point's factory; UsageError for a name no
    installed package registers (listing those that are), or a factory that fails."""
    if not wanted:
        return []
    known = _registered(wanted)
    made: list[Subscriber] = []
    for name in wanted:
        ep = known.get(name)
        if ep is None:
            have = ", ".join(sorted(known)) or "none"
            raise UsageError(f"no event subscriber {name!r} is installed (known: {have}); "
                             f"check --subscriber / {ENV}")
        try:
            factory: Any = ep.load() if not isinstance(ep, str) else _load(ep)
            subscriber = factory()
        except UsageError:
            raise
        except Exception as exc:
            close(made)
            value = ep if isinstance(ep, str) else ep.value
            raise UsageError(f"the event subscriber {name!r} ({value}) cannot start: "
                             f"{type(exc).__name__}: {exc}") from exc
        made.append(subscriber)
    return made


def _registered(wanted: Sequence[str]) -> dict[str, Any]:
    """The group's entry points by name (an ``EntryPoint``, or for Chronum's own, read
    directly, its ``module:attribute``): Chronum's own, and if that leaves one of ``wanted``
    unknown, every installed package's."""
    own: dict[str, Any] | None = _own_entry_points()
    if own is not None and all(name in own for name in wanted):
        return own
    from importlib import metadata

    found: dict[str, Any] = {ep.name: ep for ep in metadata.entry_points(group=GROUP)}
    if own is None:
        with contextlib.suppress(metadata.PackageNotFoundError):
            own = {ep.name: ep for ep in metadata.distribution("chronum").entry_points
                   if ep.group == GROUP}
    return {**found, **(own or {})}


def _own_entry_points() -> dict[str, str] | None:
    """``name -> module:attribute`` of the group in the first ``chronum-*.dist-info`` on
    ``sys.path`` (the distribution ``importlib.metadata`` would find); None without one (a
    source tree, an egg, a zip), and then ``importlib.metadata`` is asked."""
    for folder in sys.path:
        try:
            entries = os.listdir(folder or ".")
        except OSError:
            continue
        for entry in entries:
            if entry.startswith("chronum-") and entry.endswith(".dist-info"):
                try:
                    with open(os.path.join(folder or ".", entry, "entry_points.txt"),
                              encoding="utf-8") as file:
                        text = file.read()
                except OSError:
                    return {}
                return _group(text)
    return None


def _group(text: str) -> dict[str, str]:
    """The ``GROUP`` section of an ``entry_points.txt`` (INI: ``[group]``, ``name = value``)."""
    found: dict[str, str] = {}
    inside = False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            inside = line == f"[{GROUP}]"
        elif inside:
            name, sep, value = line.partition("=")
            if sep:
                found[name.strip()] = value.strip()
    return found


def _load(value: str) -> Any:
    """What an entry point's ``module:attribute`` names (as ``EntryPoint.load`` does)."""
    module, _, attribute = value.split("[")[0].partition(":")  # "[extras]" name no code
    target: Any = importlib.import_module(module.strip())
    for part in attribute.strip().split(".") if attribute.strip() else ():
        target = getattr(target, part)
    return target


def close(subscribers: Iterable[Subscriber]) -> None:
    """Call each subscriber's ``close()``; one that fails is reported, the others still run."""
    for subscriber in subscribers:
        closer = getattr(subscriber, "close", None)
        if closer is None:
            continue
        try:
            closer()
        except Exception as exc:
            label = getattr(subscriber, "label", None) or type(subscriber).__qualname__
            logger.warning("event subscriber %s could not finish: %s: %s", label,
                           type(exc).__name__, exc)
