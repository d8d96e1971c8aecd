"""Run a command and print its peak resident memory in bytes (and its exit code).

    python benchmarks/peak_rss.py chronum run flow.yaml -q --db x.db
    -> {"peak_rss_bytes": 61234176, "returncode": 0}

This wrapper starts exactly one child, so ``RUSAGE_CHILDREN``'s ``ru_maxrss`` is that child's
peak (the largest of any waited-for descendant; the grandchildren of ``chronum run`` count too,
which is what a user's machine feels). On Linux ``ru_maxrss`` is in KiB.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys


def main(argv: list[str]) -> int:
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, check=False)
    kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes
    print(json.dumps({"peak_rss_bytes": kib * scale, "returncode": done.returncode}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
