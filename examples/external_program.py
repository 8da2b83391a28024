"""Supervising an external program: a second Python process under a ProcessManager.

    python examples/external_program.py            # Ctrl-C to stop, `kill -HUP <pid>` to reload
    python examples/external_program.py --duration 2

The worker's stdout and stderr lines become log records of the logger
``procman.subprocess.worker`` (printed here on stdout); SIGHUP reloads it
(Subprocess forwards a reload as SIGHUP); SIGTERM/SIGINT stop the tree, and
the worker gets SIGTERM and stops gracefully. Exits with 128 + signal number
after a terminating signal, 0 when --duration elapses.

(This file is not called ``subprocess.py``: a script's directory comes first
on ``sys.path``, so that name would shadow the standard library's
``subprocess`` module for every example here.)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from procman import ProcessManager, TerminationSignal
from procman.builtin import SignalReceiver, Subprocess

# The supervised program. Any executable would do: a web server, a queue consumer...
WORKER = """
import signal, sys, time

flags = set()
signal.signal(signal.SIGTERM, lambda *_: flags.add("stop"))
signal.signal(signal.SIGHUP, lambda *_: flags.add("reload"))
print("worker: listening", flush=True)
beat = 0
while "stop" not in flags:
    time.sleep(0.1)
    if "reload" in flags:
        flags.discard("reload")
        print("worker: reloaded its configuration", flush=True)
    beat += 1
    if beat % 10 == 0:
        print(f"worker: heartbeat {beat // 10}", flush=True)
    if beat % 50 == 0:
        print("worker: queue is getting long", file=sys.stderr, flush=True)
print("worker: graceful stop", flush=True)
"""


async def main(duration: float | None) -> int:
    worker = Subprocess(
        [sys.executable, "-c", WORKER],
        name="worker",
        env={"PYTHONUNBUFFERED": "1"},
        ready_pattern=r"^worker: listening$",  # readiness, for wait_ready / ordered starts
    )
    manager = ProcessManager("app", shutdown_grace_period=5)
    manager.insert(SignalReceiver()).insert(worker)
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
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(name)s %(levelname)s %(message)s"
    )
    raise SystemExit(asyncio.run(main(parser.parse_args().duration)))
