"""A real dockerd for the whole session, on a private socket, with a locally imported image.

No registry is reachable here, so the image is built from the host's static busybox with
``docker import``. dockerd always gets a fresh data-root (a reused one starts ~40x slower) and
is stopped with SIGTERM at the end; mounts it leaves behind are unmounted.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker_engine import APPLETS, IMAGE, Engine


def _busybox() -> str | None:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(candidate):
            return candidate
    return None


def _stop(proc: subprocess.Popen[bytes], work: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for mount in (work / "exec" / "netns" / "default", work / "data"):
        subprocess.run(["umount", str(mount)], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    busybox = _busybox()
    if shutil.which("dockerd") is None or shutil.which("docker") is None or busybox is None:
        pytest.skip("needs dockerd, docker and a static busybox (scripts/setup-system.sh)")
    # A short path: the unix socket path must stay under ~100 bytes.
    work = Path(tempfile.mkdtemp(prefix="chronum-dockerd-", dir="/tmp"))
    host = f"unix://{work}/docker.sock"
    log = open(work / "dockerd.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        ["dockerd", "--data-root", str(work / "data"), "--exec-root", str(work / "exec"),
         "--pidfile", str(work / "dockerd.pid"), "-H", host, "--bridge=none",
         "--iptables=false", "--ip6tables=false"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    eng = Engine(host, IMAGE)
    try:
        deadline = time.monotonic() + 30
        while eng.docker("info").returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("dockerd did not start:\n" + (work / "dockerd.log").read_text())
            time.sleep(0.1)
        root = work / "rootfs"
        (root / "bin").mkdir(parents=True)
        (root / "tmp").mkdir()
        shutil.copy(busybox, root / "bin" / "busybox")
        for applet in APPLETS:
            (root / "bin" / applet).symlink_to("busybox")
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(["docker", "import", "-", IMAGE], stdin=tar.stdout,
                                  env=eng.env(), capture_output=True, text=True, timeout=60)
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
        assert imported.returncode == 0, imported.stderr
        yield eng
    finally:
        _stop(proc, work)
        log.close()
