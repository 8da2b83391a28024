"""IdleProcess: keeps a manager alive until it is shut down."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from procman.guard import RuntimeGuard, RuntimeHandle
from procman.runnable import Runnable

__all__ = ["IdleProcess"]


class IdleProcess(Runnable):
    """Does nothing until a shutdown arrives (a manager with no children returns)."""

    __slots__ = ("_guard", "_name")

    def __init__(self, name: str = "IdleProcess") -> None:
        self._guard = RuntimeGuard()
        self._name = name

    def process_start(self) -> Coroutine[Any, Any, None]:
        """Wait for a shutdown (returns the guard's coroutine: one frame less per child)."""
        return self._guard.block_until_shutdown()

    def process_handle(self) -> RuntimeHandle:
        return self._guard.handle()

    def process_name(self) -> str:
        return self._name
