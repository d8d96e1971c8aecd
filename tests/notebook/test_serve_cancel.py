"""The dashboard's Cancel reaches a run in a notebook kernel: the kernel's runner polls the
cancel request `chronum serve` records, and stops only that run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve.conftest import Served, pid_alive

from .conftest import text_of


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    (tmp_path / "srv").mkdir()
    server = Served(tmp_path / "srv")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_cancel_from_the_dashboard_stops_a_kernels_run(notebook, served: Served,
                                                       tmp_path: Path):
    pid_file = tmp_path / "pid"
    nb = notebook([
        "%load_ext chronum",
        f"%%chronum kernelrun --background --db {served.db}\nsteps:\n  - name: nap\n"
        f"    run: echo $$ > {pid_file}; exec sleep 60\n  - name: after\n    run: echo after\n"
        "    needs: [nap]\n",
        # the kernel stays free while its run goes on; the dashboard's Cancel is an HTTP call
        "import asyncio, json, urllib.request\nh = _\n"
        "while h.view.snap.states.get('nap') != 'running':\n    await asyncio.sleep(0.05)\n"
        "rid = h.view.run_id\n"
        f"req = urllib.request.Request('{served.url}/api/runs/' + rid + '/cancel', method='POST',"
        f" data=json.dumps({{'confirm': rid}}).encode(), headers={{'Authorization': "
        f"'Bearer {served.token}', 'Content-Type': 'application/json'}})\n"
        "answer = json.load(urllib.request.urlopen(req))\n"
        "r = await asyncio.wait_for(h.wait(), 30)\nprint(answer['result'], r.status)",
        "print('the kernel still works')",
    ])
    assert text_of(nb.cells[2]) == "requested cancelled\n"
    assert text_of(nb.cells[3]) == "the kernel still works\n"
    run = served.get("/api/runs")["runs"][0]
    assert run["status"] == "cancelled"
    steps = served.get(f"/api/runs/{run['run_id']}/steps")
    assert [(s["step"], s["status"]) for s in steps] == [("nap", "cancelled"),
                                                         ("after", "skipped")]
    assert not pid_alive(int(pid_file.read_text()))
