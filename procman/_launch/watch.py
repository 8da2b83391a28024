"""The launcher's watch on the tree: the application's end, the shutdown's start, its receiver."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from procman._launch.logs import Once
from procman._launch.signals import LaunchSignals
from procman._launch.systemd import notify_systemd
from procman.builtin.signals import SignalReceiver
from procman.errors import TerminationSignal
from procman.events import (
    LifecycleEvent,
    ProcessAbandoned,
    ProcessCancelled,
    ProcessFailed,
    ProcessStopped,
    ShutdownRequested,
)
from procman.runnable import ProcessControlHandler, Runnable
from procman.snapshot import ChildState, ManagerPhase

__all__ = ["LaunchWatch", "Receiver", "Watch"]

_log = logging.getLogger("procman.launch")

_TERMINAL = (ProcessStopped, ProcessFailed, ProcessCancelled, ProcessAbandoned)
_ALIVE = frozenset(
    (ChildState.STARTING, ChildState.RUNNING, ChildState.STOPPING, ChildState.BACKOFF)
)


class LaunchWatch(LaunchSignals):
    """Shuts the tree down once only the launcher's children are left; tells systemd it stops."""

    def __init__(self) -> None:
        super().__init__()
        self.logged = Once()
        self.auxiliary_live = 0
        self._stopping_sent = False

    def auxiliary_done(self, task: asyncio.Task[Any]) -> None:
        self.auxiliary_live -= 1
        self.check_app_ended()

    def receiver_signalled(self, sig: signal.Signals) -> None:
        """The SignalReceiver got terminating signal ``sig`` (and logged it)."""
        if self.signal is None:
            self.signal = sig
        if self.root is not None:
            self.root.request_shutdown()

    def check_app_ended(self) -> None:
        """Shut the tree down once no child but the launcher's is alive (O(tree), rare).

        The receiver counts as the launcher's only while its task runs: not yet
        started (an ordered start) or waiting for a restart, it keeps the count
        up, which can only delay this check until it runs, never make it early.
        """
        root = self.root
        if root is None or root.phase is not ManagerPhase.RUNNING:
            return
        alive = sum(1 for child in root.snapshot().children if child.state in _ALIVE)
        if alive - self.auxiliary_live > 0:
            return
        _log.info(
            "every application child of %s has ended; shutting the tree down",
            root.path,
            extra={"procman_event": "procman.run.app_ended", "procman_supervisor": root.path},
        )
        root.request_shutdown()

    def shutdown_began(self) -> None:
        if not self._stopping_sent:
            self._stopping_sent = True
            notify_systemd("STOPPING=1")


class Watch:
    """Watches the root: children ending, the shutdown beginning, failures seen."""

    def __init__(self, launch: LaunchWatch) -> None:
        self._launch = launch
        self._hooked: set[asyncio.Task[Any]] = set()

    def wants(self, event_type: type[LifecycleEvent]) -> bool:
        return issubclass(event_type, (*_TERMINAL, ShutdownRequested))

    def on_event(self, event: LifecycleEvent) -> None:
        launch = self._launch
        root = launch.root
        if isinstance(event, ProcessFailed):
            # Every failure reaches a logging observer (the launcher's, the application's
            # or loguru's) with its traceback: the final record need not repeat it.
            launch.logged.add(event.exception)
        if root is None or event.supervisor != root.path:
            return
        if isinstance(event, ShutdownRequested):
            launch.shutdown_began()
            return
        # The terminal event comes from the child's own task, before the manager drops the
        # child: check once the task is done (the manager's done callback runs first).
        task = asyncio.current_task()
        if task is not None and root.record_of(task) is not None:
            if task not in self._hooked:
                self._hooked.add(task)
                task.add_done_callback(self._task_done)
        else:
            asyncio.get_running_loop().call_soon(launch.check_app_ended)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._hooked.discard(task)
        self._launch.check_app_ended()

    def __repr__(self) -> str:
        return "procman.launch watcher"


class Receiver(Runnable):
    """The launcher's SignalReceiver child: it never keeps the tree alive.

    A terminating signal becomes a graceful shutdown of the root requested by
    the launcher, and this child returns: whatever the root's restart policy
    (a TRANSIENT child that raised would be restarted under an intensity), the
    tree then stops.
    """

    def __init__(self, inner: SignalReceiver, launch: LaunchWatch) -> None:
        self.inner = inner
        self._launch = launch

    def process_name(self) -> str:
        return self.inner.process_name()

    def process_handle(self) -> ProcessControlHandler:
        return self.inner.process_handle()

    async def process_start(self) -> None:
        launch = self._launch
        task = asyncio.current_task()
        if task is not None:  # counted while its task runs (a group restart runs it again)
            launch.auxiliary_live += 1
            task.add_done_callback(launch.auxiliary_done)
        asyncio.get_running_loop().call_soon(launch.check_app_ended)
        try:
            await self.inner.process_start()
        except TerminationSignal as exc:
            launch.receiver_signalled(exc.signal)
        finally:
            if self.inner.received is None:
                # The receiver removed its handlers: the launcher's take over again.
                launch.install_signal_handlers()
