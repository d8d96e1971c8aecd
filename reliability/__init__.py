"""Chronum's reliability suite: crash, concurrency, process, resource and fuzz checks.

Each check runs the real thing (``chronum`` processes, SQLite files, process trees) at a size
given by the caller and returns ``Figure`` rows; it raises ``AssertionError`` as soon as the
property it measures breaks, so every figure printed by ``reliability/run.py`` (``make
reliability``) comes from a check that would have failed. ``tests/reliability/`` runs the same
checks at small sizes in ``make test``.
"""
