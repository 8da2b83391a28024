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
from collections.abc import Iterator
from contextlib import contextmanager

from procman import ProcessManager
from procman.builtin import IdleProcess

RUNS = 9


@contextmanager
def _phase(res: Counter[str], name: str) -> Iterator[None]:
    t = time.perf_counter()
    yield
    res[name] += time.perf_counter() - t


async def _first_steps(res: Counter[str]) -> None:
    with _phase(res, "first steps"):
        await asyncio.sleep(0)
        await asyncio.sleep(0)


async def _procman(n: int, default: bool, res: Counter[str]) -> None:
    manager = ProcessManager("bench", observers=None if default else [], shutdown_grace_period=60.0)
    kids = [IdleProcess() for _ in range(n)]
    with _phase(res, "insert"):
        for kid in kids:
            manager.insert(kid)
    with _phase(res, "spawn"):
        task = asyncio.get_running_loop().create_task(manager.process_start())
        await asyncio.sleep(0)
    await _first_steps(res)
    with _phase(res, "stop"):
        await manager.process_handle().shutdown()
        await task


async def _bare(n: int, res: Counter[str]) -> None:
    event = asyncio.Event()

    async def child() -> None:
        await event.wait()

    with _phase(res, "spawn"):
        create = asyncio.get_running_loop().create_task
        tasks = [create(child()) for _ in range(n)]
    await _first_steps(res)
    with _phase(res, "stop"):
        event.set()
        await asyncio.wait(tasks)


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
