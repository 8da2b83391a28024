"""The launcher's signal handling: SIGINT, SIGTERM, SIGQUIT stop the tree; SIGHUP reloads it."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from procman.builtin.signals import RELOADING, TERMINATING
from procman.manager import ProcessManager
from procman.snapshot import ManagerPhase

__all__ = ["LaunchSignals"]

_log = logging.getLogger("procman.launch")


def _ignored(sig: signal.Signals, when: str) -> None:
    _log.warning(
        "%s received %s; ignored", sig.name, when, extra={"procman_event": "procman.signal.ignored"}
    )


class LaunchSignals:
    """The launcher's state a signal acts on, and its handlers (main thread only)."""

    def __init__(self) -> None:
        self.root: ProcessManager | None = None
        self.signal: signal.Signals | None = None
        self.startup: asyncio.Task[Any] | None = None
        self._ended = False
        self._tasks: set[asyncio.Future[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def install_signal_handlers(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        for sig in TERMINATING:
            loop.add_signal_handler(sig, self._on_signal, sig)
        for sig in RELOADING:
            loop.add_signal_handler(sig, self._on_reload_signal, sig)

    def _on_reload_signal(self, sig: signal.Signals) -> None:
        # The SignalReceiver handles reloads while it runs (an ordered start may start it
        # late): before it runs the launcher reloads the tree; before and after, ignored.
        root = self.root
        if root is None or root.phase is not ManagerPhase.RUNNING or self._stopping():
            _ignored(sig, "while the tree is not running")
            return
        _log.info("received %s", sig.name, extra={"procman_event": "procman.signal.received"})
        task = asyncio.ensure_future(root.process_handle().reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _stopping(self) -> bool:
        root = self.root
        if self._ended or self.signal is not None:
            return True
        return root is not None and (
            root.shutdown_requested() or root.phase is ManagerPhase.STOPPED
        )

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stopping():
            _ignored(sig, "during the shutdown")
            return
        _log.info("received %s", sig.name, extra={"procman_event": "procman.signal.received"})
        self.signal = sig
        if self.root is not None:
            self.root.request_shutdown()
        elif self.startup is not None:
            self.startup.cancel()
