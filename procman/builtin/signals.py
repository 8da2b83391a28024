"""SignalReceiver: turns Unix signals into a graceful shutdown or a reload of the tree."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterable
from typing import Any

from procman.child import current_supervisor
from procman.errors import TerminationSignal
from procman.guard import RuntimeGuard, RuntimeHandle
from procman.runnable import Control, Custom, Runnable, RuntimeControlMessage

__all__ = ["SignalReceiver"]

_log = logging.getLogger("procman")

TERMINATING: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)
RELOADING: tuple[signal.Signals, ...] = (signal.SIGHUP,)


class SignalReceiver(Runnable):
    """A child that listens for signals on behalf of its manager (Unix only).

    * SIGINT, SIGTERM, SIGQUIT: it raises :class:`TerminationSignal`, which
      makes its manager shut the tree down gracefully and then end with that
      :class:`TerminationSignal` (``exc.signal`` is the signal,
      ``exc.exit_code`` the conventional exit status). Repeated terminating
      signals during that shutdown are logged and ignored: the grace period
      already bounds how long it takes.
    * SIGHUP: a reload of its manager's tree. Bursts are coalesced: at most one
      reload runs and at most one more is queued behind it.
    * Its handlers are installed when it starts and removed when it stops
      (after a terminating signal: when its manager has stopped).
    """

    def __init__(
        self,
        terminating: Iterable[signal.Signals] = TERMINATING,
        reloading: Iterable[signal.Signals] = RELOADING,
    ) -> None:
        self._terminating = tuple(signal.Signals(s) for s in terminating)
        self._reloading = tuple(signal.Signals(s) for s in reloading)
        overlap = set(self._terminating) & set(self._reloading)
        if overlap:
            raise ValueError(f"signals cannot both terminate and reload: {sorted(overlap)}")
        self._guard = RuntimeGuard()
        self._received: signal.Signals | None = None
        self._reload_task: asyncio.Task[None] | None = None
        self._reload_again = False
        self._tasks: set[asyncio.Task[Any]] = set()

    def process_handle(self) -> RuntimeHandle:
        return self._guard.handle()

    @property
    def received(self) -> signal.Signals | None:
        """The terminating signal received in the latest run, if any."""
        return self._received

    async def process_start(self) -> None:
        loop = asyncio.get_running_loop()
        manager: Any = current_supervisor()
        self._received = None
        signals = (*self._terminating, *self._reloading)
        for sig in signals:
            loop.add_signal_handler(sig, self._on_signal, sig)
        keep_until_stopped = False
        try:
            ticker = self._guard.runtime_ticker()
            while True:
                never: asyncio.Future[None] = loop.create_future()
                op = await ticker.tick(never)
                if not isinstance(op, Control):
                    continue
                message = op.message
                if message is RuntimeControlMessage.SHUTDOWN:
                    return
                if not isinstance(message, Custom) or not isinstance(
                    message.payload, signal.Signals
                ):
                    continue
                sig = message.payload
                if sig in self._reloading:
                    self._reload(manager)
                elif sig in self._terminating:
                    self._received = sig
                    keep_until_stopped = hasattr(manager, "wait_stopped")
                    raise TerminationSignal(sig)
        finally:
            if keep_until_stopped:
                self._spawn(self._remove_when_stopped(loop, manager, signals))
            else:
                self._remove(loop, signals)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._received is not None and sig in self._terminating:
            _log.warning(
                "procman: %s received during the shutdown started by %s; ignored",
                sig.name,
                self._received.name,
                extra={"procman_event": "procman.signal.ignored"},
            )
            return
        _log.info(
            "procman: received %s", sig.name, extra={"procman_event": "procman.signal.received"}
        )
        self._guard.send_nowait(Custom(sig))

    def _reload(self, manager: Any) -> None:
        if manager is None or not hasattr(manager, "process_handle"):
            _log.warning("procman: SIGHUP received but the SignalReceiver has no manager")
            return
        if self._reload_task is not None and not self._reload_task.done():
            self._reload_again = True
            return
        self._reload_task = self._spawn(self._reload_loop(manager))

    async def _reload_loop(self, manager: Any) -> None:
        while True:
            self._reload_again = False
            await manager.process_handle().reload()
            if not self._reload_again:
                return

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            _log.error("procman: signal-triggered reload failed", exc_info=exc)

    async def _remove_when_stopped(
        self, loop: asyncio.AbstractEventLoop, manager: Any, signals: tuple[signal.Signals, ...]
    ) -> None:
        try:
            await manager.wait_stopped()
        finally:
            self._remove(loop, signals)

    @staticmethod
    def _remove(loop: asyncio.AbstractEventLoop, signals: tuple[signal.Signals, ...]) -> None:
        if loop.is_closed():
            return
        for sig in signals:
            loop.remove_signal_handler(sig)
