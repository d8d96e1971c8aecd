"""Fixtures for the flow-language tests: real `chronum` commands (tests/cli) and the
scheduler's fake executor and jumping clock (tests/engine)."""

from tests.cli.conftest import Chronum, chronum, pid_alive, wait_for
from tests.engine.conftest import bus, clock, executor, recorder, registry

__all__ = ["Chronum", "bus", "chronum", "clock", "executor", "pid_alive", "recorder", "registry",
           "wait_for"]
