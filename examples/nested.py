"""A tree of managers: the root supervises an API group and a nested consumer group.
One consumer crashes; the whole tree shuts down and the error names its path.

    python examples/nested.py --duration 2
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


def worker(name: str, crash_after: float | None = None) -> Runnable:
    async def run(ctx: RuntimeContext) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            match await ctx.tick(asyncio.sleep(0.1)):
                case Next():
                    if crash_after is not None and loop.time() - start > crash_after:
                        raise RuntimeError(f"{name}: poison message")
                case Control(RuntimeControlMessage.SHUTDOWN):
                    return
                case Control():
                    pass

    return runnable(run, name=name)


async def main(duration: float) -> int:
    consumers = ProcessManager("consumers", shutdown_grace_period=2)
    for i in range(3):
        crash = duration if i == 2 else None
        consumers.insert(worker(f"consumer-{i}", crash_after=crash))
    api = ProcessManager("api", shutdown_grace_period=2)
    api.insert(worker("http")).insert(worker("grpc"))
    root = ProcessManager("root", shutdown_grace_period=5)
    root.insert(api).insert(consumers)
    try:
        await root.process_start()
    except RuntimeError as exc:
        print(f"tree stopped: {exc!r} {exc.__notes__}")
        return 0
    return 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=2.0)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    raise SystemExit(asyncio.run(main(parser.parse_args().duration)))
