"""Add workers to a running manager, then shut everything down.

python examples/dynamic_add.py --duration 2
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from procman import (
    Control,
    Next,
    ProcessManager,
    Runnable,
    RuntimeContext,
    RuntimeControlMessage,
    runnable,
)
from procman.builtin import IdleProcess


def make_worker(n: int) -> Runnable:
    async def work(ctx: RuntimeContext) -> None:
        while True:
            match await ctx.tick(asyncio.sleep(0.25)):
                case Next():
                    print(f"dynamic-{n}: working")
                case Control(RuntimeControlMessage.SHUTDOWN):
                    return
                case Control():
                    pass

    return runnable(work, name=f"dynamic-{n}")


async def main(duration: float) -> None:
    manager = ProcessManager("dynamic")
    manager.insert(IdleProcess())  # keeps the manager alive while children come and go
    task = asyncio.create_task(manager.process_start())
    await asyncio.sleep(0.1)
    steps = max(1, int(duration / 0.5))
    for n in range(steps):
        manager.add(make_worker(n))
        print(f"added dynamic-{n}; running children: {len(manager)}")
        await asyncio.sleep(duration / steps)
    await manager.process_handle().shutdown()
    await task
    print("stopped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=3.0)
    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(parser.parse_args().duration))
