"""W3's baseline: the same N ``true`` processes, two at a time, with nothing but asyncio.

    python benchmarks/asyncio_true.py 300

This is the floor for a runner that spawns processes from an event loop, so W3 is judged as a
ratio to it (budget 1.2x) rather than in absolute seconds.
"""

from __future__ import annotations

import asyncio
import sys


async def _one(gate: asyncio.Semaphore) -> None:
    async with gate:
        proc = await asyncio.create_subprocess_exec("true")
        if await proc.wait() != 0:
            raise SystemExit("`true` failed")


async def _main(n: int, parallel: int) -> None:
    gate = asyncio.Semaphore(parallel)
    await asyncio.gather(*(_one(gate) for _ in range(n)))


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]) if len(sys.argv) > 1 else 300, 2))
