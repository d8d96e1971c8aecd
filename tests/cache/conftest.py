from tests.cli.conftest import Chronum, chronum  # noqa: F401 - the fixture, shared

__all__ = ["Chronum"]
