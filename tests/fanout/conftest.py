"""The real `chronum` command against a real SQLite file (tests/cli's harness)."""

from tests.cli.conftest import Chronum, chronum

__all__ = ["Chronum", "chronum"]
