"""A real JupyterLab server and a real Chromium page, for tests that look at what a user sees.

Verified recipe (shared/recipes/browser-tests.md): Debian's /usr/bin/chromium driven by Python
Playwright (never `playwright install`), JupyterLab on 127.0.0.1 with a token, every Jupyter dir
inside the test's temp folder so nothing leaks into the user's home.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Lab:
    """`jupyter lab` in a subprocess, serving ``root``; stopped by its pid with SIGTERM."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root = root
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for name in ("CONFIG", "RUNTIME", "DATA"):
            folder = home / name.lower()
            folder.mkdir(parents=True, exist_ok=True)
            env[f"JUPYTER_{name}_DIR"] = str(folder)
        # no "get notified about Jupyter news?" toast over the screenshots
        settings = home / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
        # Chronum's JupyterLab extension as the package ships it (an install puts it under
        # sys.prefix too; this copy keeps the test independent of how chronum was installed)
        shutil.copytree(ROOT / "chronum" / "notebook" / "labextension",
                        home / "data" / "labextensions" / "chronum-lab", dirs_exist_ok=True)
        # the kernel is the venv's python (its kernelspec lives under sys.prefix)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        self.log = (home / "lab.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser",
             "--ip=127.0.0.1", f"--port={self.port}", f"--ServerApp.root_dir={root}",
             f"--IdentityProvider.token={self.token}", "--LabApp.news_url=None",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )

    def api(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}", method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
        return json.loads(body) if body else None

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}")
            try:
                self.api("/api/status")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        raise TimeoutError("jupyter lab did not answer /api/status in time")

    def delete_sessions(self) -> None:
        """A clean kernel for the next notebook (safer than "Restart Kernel and Run All")."""
        for session in self.api("/api/sessions"):
            self.api(f"/api/sessions/{session['id']}", method="DELETE")

    def notebook_url(self, relpath: str) -> str:
        return f"{self.url}/lab/tree/{relpath}?reset&token={self.token}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def accept_kernel_dialog(page: Any) -> None:
    """Answer JupyterLab's "Select Kernel" dialog with its preselected kernel, as a user does.

    On a loaded machine the kernel list can arrive after the notebook opens, and JupyterLab
    then asks which kernel to start instead of starting the notebook's own.
    """
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    if dialog.count():
        dialog.locator(".jp-mod-accept").click()


def open_notebook(page: Any, lab: Lab, relpath: str, timeout: float = 60.0) -> None:
    """Open a notebook and wait until its kernel is idle."""
    page.goto(lab.notebook_url(relpath))
    idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    deadline = time.monotonic() + timeout
    while not idle.count():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the kernel of {relpath} was not idle after {timeout:g}s")
        accept_kernel_dialog(page)
        time.sleep(0.1)


def run_all(page: Any) -> None:
    """Menu Run > Run All Cells; retried because it is a no-op until the notebook is active."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(20):
        if page.locator(".jp-Dialog").count():  # Escape would answer it "No Kernel"
            accept_kernel_dialog(page)
            time.sleep(0.5)
            continue
        try:
            page.locator(".jp-Notebook .jp-Cell").first.click(timeout=5_000)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click(timeout=5_000)
            page.locator("li[data-command='runmenu:run-all']:not(.lm-mod-disabled)").click(
                timeout=5_000)
            page.wait_for_function(
                """() => [...document.querySelectorAll('.jp-InputArea-prompt')]
                       .some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))""",
                timeout=3_000,
            )
            return
        except PlaywrightTimeout:  # the click did nothing, or a dialog came up: try again
            if not page.locator(".jp-Dialog").count():
                page.keyboard.press("Escape")  # close the menu
    dialog = page.locator(".jp-Dialog")
    blocked = f": a dialog stayed open: {dialog.first.inner_text()!r}" if dialog.count() else ""
    raise AssertionError(f"Run All did not start any cell{blocked}")


def wait_all_executed(page: Any, timeout: float = 120.0) -> None:
    """Until every code cell shows `[n]` (none queued or running)."""
    page.wait_for_function(
        """() => { const ps = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
                   return ps.length > 0 && ps.every(p => /\\[\\d+\\]/.test(p.textContent)); }""",
        timeout=timeout * 1000,
    )


def poll(page: Any, probe: str, until: Callable[[Any], bool], timeout: float,
         interval: float = 0.1) -> list[Any]:
    """Evaluate the JS ``probe`` every ``interval`` s; every value seen, up to ``until``'s."""
    seen: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = page.evaluate(probe)
        seen.append(value)
        if until(value):
            return seen
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s; last values: {seen[-5:]}")


def screenshot(page: Any, name: str, focus: str | None = None) -> Path:
    """Save build/screenshots/<name>.png, scrolled to the last element matching ``focus``."""
    if focus is not None:
        page.evaluate("""(sel) => { const all = document.querySelectorAll(sel);
                                    if (all.length) all[all.length - 1].scrollIntoView(
                                        {block: "start"}); }""", focus)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
