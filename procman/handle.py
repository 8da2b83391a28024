"""ManagerHandle: how a parent, a signal or a user controls a ProcessManager's tree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from procman.runnable import ProcessControlHandler, RuntimeControlMessage

if TYPE_CHECKING:
    from procman.manager import ProcessManager

__all__ = ["ManagerHandle"]


class ManagerHandle(ProcessControlHandler):
    """Controls a :class:`ProcessManager` and, through it, its whole subtree."""

    __slots__ = ("_manager",)

    def __init__(self, manager: ProcessManager) -> None:
        self._manager = manager

    async def shutdown(self) -> None:
        """Shut the tree down gracefully and return once every child has ended.

        Before start the request is kept (the manager then returns at once
        when started). Called from inside the manager's own subtree it only
        begins the shutdown, since waiting there would wait for itself.
        """
        manager = self._manager
        manager.request_shutdown()
        if not manager.runs_current_task():
            await manager.wait_stopped()

    async def reload(self) -> None:
        """Forward a reload to every running child concurrently and wait for them.

        Handlers still running after the grace period are cancelled (result
        ``timeout``); a handler that raises is counted (result ``error``).
        """
        await self._manager.reload()

    def control_nowait(self, message: RuntimeControlMessage) -> bool:
        if message is RuntimeControlMessage.SHUTDOWN:
            self._manager.request_shutdown()
            return True
        return False
