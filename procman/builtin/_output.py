"""A Subprocess's output: its pipes read line by line, logged, matched against the ready pattern."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import IO, Literal

__all__ = ["LINE_LIMIT", "OUTPUT_MODES", "OutputMode", "connect", "pump"]

OutputMode = Literal["log", "inherit", "discard"]
OUTPUT_MODES: tuple[str, ...] = ("log", "inherit", "discard")

LINE_LIMIT = 64 * 1024
"""Longer output lines are logged in pieces of this many bytes."""


async def connect(
    loop: asyncio.AbstractEventLoop, pipe: IO[bytes], transports: list[asyncio.BaseTransport]
) -> asyncio.StreamReader:
    """A reader of ``pipe``; its transport (which owns the pipe) goes into ``transports``."""
    reader = asyncio.StreamReader(limit=LINE_LIMIT, loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe
    )
    transports.append(transport)
    return reader


async def pump(
    reader: asyncio.StreamReader,
    stream: str,
    level: int,
    fields: dict[str, object],
    ready: asyncio.Future[None] | None,
    *,
    logger: logging.Logger | None,
    pattern: re.Pattern[str] | None,
) -> None:
    """Log each line of one output stream to ``logger`` (if any); resolve ``ready`` on a match."""
    extra = {"procman_event": "procman.subprocess.output", **fields, "procman_stream": stream}
    while True:
        try:
            data = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            data = exc.partial
            if not data:
                return
        except asyncio.LimitOverrunError:
            data = await reader.read(LINE_LIMIT)
        line = data.rstrip(b"\n").rstrip(b"\r").decode("utf-8", "replace")
        if pattern is not None and ready is not None and not ready.done() and pattern.search(line):
            ready.set_result(None)
        if logger is not None and logger.isEnabledFor(level):
            logger.log(level, line, extra=extra)
