"""Observers a run loads by name: the ``chronum.subscribers`` entry point group.

``CHRONUM_SUBSCRIBERS=otel,...`` (any run: the CLI, a notebook, a script) and
``chronum run --subscriber NAME`` name them, so a run feeds an exporter without Python glue.
An entry point names a factory: called with no arguments once per run, it returns the
subscriber (a callable taking an event), which may have ``close()``; the session calls it once
the run is over and recorded, so an exporter flushes before the process exits. Chronum's own
(``otel``) register through the same group in ``pyproject.toml``.

Nothing is looked up unless a name is given: reading the installed packages' entry points is
not free, and most runs name none.
"""

from __future__ import annotations

import logging
import os
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
    from importlib.metadata import entry_points

    known = {ep.name: ep for ep in entry_points(group=GROUP)}
    made: list[Subscriber] = []
    for name in wanted:
        ep = known.get(name)
        if ep is None:
            have = ", ".join(sorted(known)) or "none"
            raise UsageError(f"no event subscriber {name!r} is installed (known: {have}); "
                             f"check --subscriber / {ENV}")
        try:
            factory: Any = ep.load()
            subscriber = factory()
        except UsageError:
            raise
        except Exception as exc:
            close(made)
            raise UsageError(f"the event subscriber {name!r} ({ep.value}) cannot start: "
                             f"{type(exc).__name__}: {exc}") from exc
        made.append(subscriber)
    return made


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
