"""Where the time of start + stop goes, per child, with the cyclic GC off.

``python -m benchmarks.floor [N] [default]``: procman with no observer (or,
with ``default``, the default ``LoggingObserver``) against bare asyncio tasks
awaiting one shared Event; microseconds per child for ``insert()``, the loop
iteration that creates the tasks ("spawn"), the next two iterations ("first
steps") and the graceful stop. 9 runs each, means. See docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections import Counter

from procman import ProcessManager
from procman.builtin import IdleProcess

RUNS = 9


async def _procman(n: int, default: bool, res: Counter[str]) -> None:
    clock = time.perf_counter
    manager = ProcessManager("bench", observers=None if default else [], shutdown_grace_period=60.0)
    kids = [IdleProcess() for _ in range(n)]
    t = clock()
    for kid in kids:
        manager.insert(kid)
    res["insert"] += clock() - t
    t = clock()
    task = asyncio.get_running_loop().create_task(manager.process_start())
    await asyncio.sleep(0)
    res["spawn"] += clock() - t
    t = clock()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    res["first steps"] += clock() - t
    t = clock()
    await manager.process_handle().shutdown()
    await task
    res["stop"] += clock() - t


async def _bare(n: int, res: Counter[str]) -> None:
    clock = time.perf_counter
    event = asyncio.Event()

    async def child() -> None:
        await event.wait()

    t = clock()
    create = asyncio.get_running_loop().create_task
    tasks = [create(child()) for _ in range(n)]
    res["spawn"] += clock() - t
    t = clock()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    res["first steps"] += clock() - t
    t = clock()
    event.set()
    await asyncio.wait(tasks)
    res["stop"] += clock() - t


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv and argv[0].isdigit() else 10_000
    default = "default" in argv
    logging.getLogger("procman").addHandler(logging.NullHandler())
    gc.disable()
    try:
        for name in ("bare", "procman"):
            res: Counter[str] = Counter()
            for _ in range(RUNS):
                gc.collect()
                if name == "bare":
                    asyncio.run(_bare(n, res))
                else:
                    asyncio.run(_procman(n, default, res))
            per = {k: v / RUNS / n * 1e6 for k, v in res.items()}
            parts = "  ".join(f"{k} {v:.2f}" for k, v in per.items())
            label = (
                "procman" + (" (default observer)" if default else "") if name != "bare" else name
            )
            print(f"{label:28s} {parts}  total {sum(per.values()):.2f} us/child")
    finally:
        gc.enable()


if __name__ == "__main__":
    main(sys.argv[1:])
