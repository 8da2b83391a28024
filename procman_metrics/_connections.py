"""The metrics server's connections: one request answered on each, all closed when it stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from http import HTTPStatus
from typing import Any

from procman_metrics.collector import LogLimiter
from procman_metrics.http import BadRequest, Request, discard_input, read_request, render_response

_DISCARD_LIMIT = 1024 * 1024
"""At most this much of what a client sends after its request head is read and dropped."""
_LINGER = 2.0
"""...for at most this long (seconds) before the connection is closed anyway."""


class Connections:
    """Serves each connection (:meth:`serve`, the ``asyncio.start_server`` callback).

    ``respond`` makes the response to a request; reading the request and
    writing the response are each bounded by ``timeout``.
    """

    def __init__(
        self,
        respond: Callable[[Request], Awaitable[bytes]],
        timeout: float,
        log: LogLimiter,
    ) -> None:
        self._respond = respond
        self._timeout = timeout
        self._log = log
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The ``asyncio.start_server`` callback: serve the connection in a task of ours.

        A plain function, so asyncio makes no task of its own: its done callback
        calls ``task.exception()``, which raises (and is reported to the loop as
        "Exception in callback") for a connection task cancelled before its first
        step, as happens to one accepted while the server stops (3.11, 3.12).
        Registered at once, every connection task is cancelled by :meth:`close`.
        """
        if self._closing:
            writer.close()
            return
        task = asyncio.get_running_loop().create_task(self.serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(partial(self._served, writer))

    def _served(self, writer: asyncio.StreamWriter, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():  # cancelled before its first step: serve() never closed it
            writer.close()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            response = await self._answer(reader)
            if response is None:
                return
            writer.write(response)
            await asyncio.wait_for(writer.drain(), self._timeout)
            if writer.can_write_eof():
                writer.write_eof()
            await asyncio.wait_for(
                discard_input(reader, _DISCARD_LIMIT), min(self._timeout, _LINGER)
            )
        except (OSError, TimeoutError):  # the client went away (reset, not connected, ...)
            pass
        except asyncio.CancelledError:
            # The server closes its connections this way when it stops.
            if not self._closing:
                raise
        except Exception:
            self._log.log(
                logging.ERROR,
                "connection",
                "procman metrics server: a connection failed",
                exc_info=True,
            )
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _answer(self, reader: asyncio.StreamReader) -> bytes | None:
        """The response to the request ``reader`` delivers (None if it sent none)."""
        try:
            request = await asyncio.wait_for(read_request(reader), self._timeout)
        except BadRequest as exc:
            self._log.log(
                logging.INFO,
                f"bad-request-{exc.status.value}",
                "procman metrics server: answered %d to a malformed request (%s)",
                exc.status.value,
                exc,
            )
            return render_response(exc.status, f"{exc}\n".encode())
        except TimeoutError:
            return render_response(HTTPStatus.REQUEST_TIMEOUT, b"request timeout\n")
        if request is None:
            return None
        return await self._respond(request)

    async def close(self, server: asyncio.Server) -> None:
        """Stop ``server`` listening and close the open connections (waiting at most 2 s)."""
        self._closing = True
        server.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                asyncio.gather(server.wait_closed(), *self._tasks, return_exceptions=True),
                timeout=2.0,
            )
        for task in list(self._tasks):  # still running after 2 s: they end on their own
            task.cancel()
        self._tasks.clear()
        self._closing = False
