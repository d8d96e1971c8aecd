"""The engine the docker tests talk to: a private dockerd's socket and a local image."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

IMAGE = "localhost/busybox:test"
APPLETS = ("sh", "true", "echo", "cat", "ls", "env", "sleep", "pwd", "touch")


@dataclass(frozen=True)
class Engine:
    host: str
    image: str

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], env=self.env(), capture_output=True,
                              text=True, timeout=60)

    def containers(self) -> list[str]:
        """Every container the engine knows, running or not."""
        out = self.docker("ps", "-a", "--format", "{{.Names}}")
        assert out.returncode == 0, out.stderr
        return out.stdout.split()
