"""Two workers run for a while, then the tree shuts down gracefully.

python examples/simple.py --duration 2
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from procman import (
    Control,
    Next,
    ProcessManagerBuilder,
    Runnable,
    RuntimeControlMessage,
    RuntimeGuard,
    RuntimeHandle,
)


class Worker(Runnable):
    def __init__(self, worker_id: int) -> None:
        self.worker_id = worker_id
        self.guard = RuntimeGuard()

    def process_name(self) -> str:
        return f"worker-{self.worker_id}"

    async def process_start(self) -> None:
        ticker = self.guard.runtime_ticker()
        while True:
            match await ticker.tick(asyncio.sleep(0.5)):
                case Next():
                    print(f"worker-{self.worker_id}: heartbeat")
                case Control(RuntimeControlMessage.SHUTDOWN):
                    print(f"worker-{self.worker_id}: shutting down")
                    return
                case Control():
                    pass

    def process_handle(self) -> RuntimeHandle:
        return self.guard.handle()


async def main(duration: float) -> None:
    manager = ProcessManagerBuilder().pre_insert(Worker(0)).pre_insert(Worker(1)).build()
    task = asyncio.create_task(manager.process_start())
    await asyncio.sleep(duration)
    await manager.process_handle().shutdown()
    await task
    print("all workers stopped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=3.0)
    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(parser.parse_args().duration))
