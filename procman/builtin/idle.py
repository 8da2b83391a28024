"""IdleProcess: keeps a manager alive until it is shut down."""

from __future__ import annotations

import asyncio

from procman.runnable import ProcessControlHandler, Runnable, RuntimeControlMessage

__all__ = ["IdleProcess"]


class IdleProcess(Runnable, ProcessControlHandler):
    """Does nothing until a shutdown arrives (a manager with no children returns).

    It is its own control handler, told synchronously: an idle child costs
    one object and one future, which is what lets a manager hold 100k of
    them cheaply. A shutdown sent before start is kept (the next start
    returns at once); reloads are ignored; it can be started again.
    """

    __slots__ = ("_name", "_stop", "_waiter")

    def __init__(self, name: str = "IdleProcess") -> None:
        self._name = name
        self._stop = False
        self._waiter: asyncio.Future[None] | None = None

    async def process_start(self) -> None:
        if not self._stop:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        self._stop = False

    def process_handle(self) -> IdleProcess:
        return self

    def process_name(self) -> str:
        return self._name

    async def shutdown(self) -> None:
        self._request_stop()

    async def reload(self) -> None:
        """Nothing to reload."""

    def control_nowait(self, message: RuntimeControlMessage) -> bool:
        if message is RuntimeControlMessage.SHUTDOWN:
            self._request_stop()
        return True

    def _request_stop(self) -> None:
        self._stop = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __repr__(self) -> str:
        return f"<IdleProcess {self._name!r}>"
