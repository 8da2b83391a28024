"""A flaky worker restarted with exponential backoff; shutdown cuts the backoff short.

python examples/restart_supervisor.py --duration 3
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from procman import Control, Next, ProcessManager, RuntimeContext, runnable
from procman.builtin import IdleProcess, RestartBackoff, RestartSupervisor


async def flaky(ctx: RuntimeContext) -> None:
    beats = 0
    while True:
        match await ctx.tick(asyncio.sleep(0.1)):
            case Next():
                beats += 1
                if beats == 3:
                    raise ConnectionError("lost the upstream connection")
            case Control():
                return


async def main(duration: float) -> None:
    supervisor = RestartSupervisor(runnable(flaky)).backoff(
        RestartBackoff(initial=0.1, max=1.0, factor=2.0)
    )
    manager = ProcessManager("restarts")
    manager.insert(supervisor).insert(IdleProcess())
    task = asyncio.create_task(manager.process_start())
    await asyncio.sleep(duration)
    print(f"restarted {supervisor.restart_count} times")
    await manager.process_handle().shutdown()
    await task
    print("stopped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=3.0)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    asyncio.run(main(parser.parse_args().duration))
