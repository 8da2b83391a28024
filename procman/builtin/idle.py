"""IdleProcess: keeps a manager alive until it is shut down."""

from __future__ import annotations

from procman.guard import RuntimeGuard, RuntimeHandle
from procman.runnable import Runnable

__all__ = ["IdleProcess"]


class IdleProcess(Runnable):
    """Does nothing until a shutdown arrives (a manager with no children returns)."""

    __slots__ = ("_guard", "_name")

    def __init__(self, name: str = "IdleProcess") -> None:
        self._guard = RuntimeGuard()
        self._name = name

    async def process_start(self) -> None:
        await self._guard.block_until_shutdown()

    def process_handle(self) -> RuntimeHandle:
        return self._guard.handle()

    def process_name(self) -> str:
        return self._name
