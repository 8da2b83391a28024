"""Readiness by TCP port: probe ``host:port`` with backoff until it accepts a connection."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["probe_port"]

_PROBE_FIRST_DELAY = 0.05
_PROBE_MAX_DELAY = 1.0
_PROBE_CONNECT_TIMEOUT = 1.0


async def probe_port(host: str, port: int, ready: asyncio.Future[None]) -> None:
    """Resolve ``ready`` once ``host:port`` accepts a connection."""
    delay = _PROBE_FIRST_DELAY
    while not ready.done():
        try:
            async with asyncio.timeout(_PROBE_CONNECT_TIMEOUT):
                _, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError):
            await asyncio.sleep(delay)
            delay = min(delay * 2, _PROBE_MAX_DELAY)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        if not ready.done():
            ready.set_result(None)
