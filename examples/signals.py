"""Signal handling: SIGTERM/SIGINT/SIGQUIT shut the tree down gracefully, SIGHUP reloads it.

    python examples/signals.py            # Ctrl-C to stop, `kill -HUP <pid>` to reload
    python examples/signals.py --duration 2

Prints "ready <pid>" once the handlers are installed; exits with 128 + signal number
after a terminating signal, 0 when --duration elapses.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from procman import (
    Control,
    Next,
    ProcessManager,
    RuntimeContext,
    RuntimeControlMessage,
    TerminationSignal,
    runnable,
)
from procman.builtin import SignalReceiver


async def service(ctx: RuntimeContext) -> None:
    print(f"ready {os.getpid()}", flush=True)
    reloads = 0
    while True:
        match await ctx.tick(asyncio.sleep(3600)):
            case Next():
                pass
            case Control(RuntimeControlMessage.RELOAD):
                reloads += 1
                print(f"reloaded {reloads}", flush=True)
            case Control(RuntimeControlMessage.SHUTDOWN):
                print("service: graceful stop", flush=True)
                return
            case Control():
                pass


async def main(duration: float | None) -> int:
    manager = ProcessManager("signals", shutdown_grace_period=5)
    manager.insert(SignalReceiver()).insert(runnable(service, name="service"))
    task = asyncio.create_task(manager.process_start())
    try:
        if duration is not None:
            done, _ = await asyncio.wait({task}, timeout=duration)
            if not done:
                await manager.process_handle().shutdown()
        await task
    except TerminationSignal as sig:
        print(f"stopped by {sig.signal.name}", flush=True)
        return sig.exit_code
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=None)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    raise SystemExit(asyncio.run(main(parser.parse_args().duration)))
