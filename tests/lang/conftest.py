"""Real `chronum` commands on real flows, from tests/cli, for the flow-language tests."""

from tests.cli.conftest import Chronum, chronum, pid_alive, wait_for

__all__ = ["Chronum", "chronum", "pid_alive", "wait_for"]
