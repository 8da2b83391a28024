"""Context-style processes: a plain async function and a class with
process_start_with_context, both reacting to reload and custom messages.

    python examples/runtime_context.py --duration 2
"""

from __future__ import annotations

import argparse
import asyncio

from procman import (
    Control,
    Custom,
    Next,
    ProcessManager,
    RuntimeContext,
    RuntimeControlMessage,
    runnable,
    with_runtime_context,
)


async def counter(ctx: RuntimeContext) -> None:
    count = 0
    while True:
        match await ctx.tick(asyncio.sleep(0.2)):
            case Next():
                count += 1
            case Control(RuntimeControlMessage.RELOAD):
                print(f"counter: reload at {count}, resetting")
                count = 0
            case Control(Custom(payload)):
                print(f"counter: custom message {payload!r}")
            case Control(RuntimeControlMessage.SHUTDOWN):
                print(f"counter: stopping at {count}")
                return


class Greeter:
    def process_name(self) -> str:
        return "greeter"

    async def process_start_with_context(self, ctx: RuntimeContext) -> None:
        await ctx.handle().custom("hello from myself")
        while True:
            match await ctx.tick(asyncio.sleep(1)):
                case Control(Custom(payload)):
                    print(f"greeter: got {payload!r}")
                case Control(RuntimeControlMessage.SHUTDOWN):
                    return
                case _:
                    pass


async def main(duration: float) -> None:
    count = runnable(counter)
    manager = ProcessManager("context")
    manager.insert(count).insert(with_runtime_context(Greeter()))
    task = asyncio.create_task(manager.process_start())
    await asyncio.sleep(duration / 2)
    await manager.process_handle().reload()
    await count.process_handle().custom({"note": "hi"})  # type: ignore[attr-defined]
    await asyncio.sleep(duration / 2)
    await manager.process_handle().shutdown()
    await task


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=2.0)
    asyncio.run(main(parser.parse_args().duration))
