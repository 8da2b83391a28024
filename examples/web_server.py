"""An aiohttp web server supervised by procman (like the seed crate's axum example).

SIGTERM/SIGINT drain in-flight requests and stop; SIGHUP reloads the greeting
without dropping the listening socket.

    python examples/web_server.py --port 8080          # curl http://127.0.0.1:8080/
    python examples/web_server.py --port 0 --duration 3

Needs aiohttp (`pip install aiohttp`). Prints "listening on URL" when ready.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from aiohttp import web

from procman import (
    Control,
    ProcessManager,
    Runnable,
    RuntimeControlMessage,
    RuntimeGuard,
    RuntimeHandle,
    TerminationSignal,
)
from procman.builtin import SignalReceiver


class WebServer(Runnable):
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.guard = RuntimeGuard()
        self.reloads = 0

    def process_name(self) -> str:
        return "http"

    def process_handle(self) -> RuntimeHandle:
        return self.guard.handle()

    async def hello(self, request: web.Request) -> web.Response:
        return web.Response(text=f"hello (config generation {self.reloads})\n")

    async def process_start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self.hello)
        runner = web.AppRunner(app, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        addr = runner.addresses[0]
        print(f"listening on http://{addr[0]}:{addr[1]}/ pid {os.getpid()}", flush=True)
        ticker = self.guard.runtime_ticker()
        try:
            while True:
                never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                match await ticker.tick(never):
                    case Control(RuntimeControlMessage.SHUTDOWN):
                        return
                    case Control(RuntimeControlMessage.RELOAD):
                        self.reloads += 1
                        print(f"reloaded: generation {self.reloads}", flush=True)
                    case _:
                        pass
        finally:
            await runner.cleanup()  # stops accepting, drains in-flight requests
            print("http: drained and closed", flush=True)


async def main(host: str, port: int, duration: float | None) -> int:
    root = ProcessManager("web", shutdown_grace_period=5)
    root.insert(SignalReceiver()).insert(WebServer(host, port))
    task = asyncio.create_task(root.process_start())
    try:
        if duration is not None:
            done, _ = await asyncio.wait({task}, timeout=duration)
            if not done:
                await root.process_handle().shutdown()
        await task
    except TerminationSignal as sig:
        print(f"stopped by {sig.signal.name}", flush=True)
        return sig.exit_code
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--duration", type=float, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    raise SystemExit(asyncio.run(main(args.host, args.port, args.duration)))
