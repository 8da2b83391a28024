"""RuntimeGuard, RuntimeTicker and RuntimeHandle: control messages for one process.

A guard owns one FIFO queue of control messages. The process takes a
:class:`RuntimeTicker` from it and races its own work against that queue;
supervisors (or anyone) hold a :class:`RuntimeHandle` to put messages in.

Guarantees:

* Messages are delivered in the order they were sent, each exactly once.
* Messages sent before the ticker exists (before the process started) are
  kept and delivered on the first tick.
* A guard can be started, shut down and started again: every call to
  :meth:`RuntimeGuard.runtime_ticker` begins a new run.
* Waiting costs one future per waiting process: guards never share a waiter,
  so cancelling many processes stays linear.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable
from functools import partial
from typing import Any, TypeVar

from procman.child import signal_ready
from procman.runnable import (
    Control,
    ControlMessage,
    Custom,
    Next,
    ProcessControlHandler,
    ProcessOperation,
    RuntimeControlMessage,
)

__all__ = ["RuntimeGuard", "RuntimeHandle", "RuntimeTicker"]

T = TypeVar("T")

_SHUTDOWN = RuntimeControlMessage.SHUTDOWN
_RELOAD = RuntimeControlMessage.RELOAD
_SHUTDOWN_CONTROL = Control(_SHUTDOWN)
_RELOAD_CONTROL = Control(_RELOAD)
"""``Control`` is immutable: a shutdown or reload reaches every child as one shared object."""


_FUTURE = asyncio.Future
"""Exactly this type (not a Task, not a subclass) is raced without a second future."""

_NO_CONTEXT = contextvars.Context()
"""Context for internal wake-up callbacks (saves a context copy per tick)."""


def _wake_on_done(waiter: asyncio.Future[None], _: object) -> None:
    if not waiter.done():
        waiter.set_result(None)


class RuntimeGuard:
    """The control-message queue of one process.

    Create one per process object; hand :meth:`handle` to supervisors and use
    :meth:`runtime_ticker` (or :meth:`block_until_shutdown`) inside
    ``process_start``.
    """

    __slots__ = ("__weakref__", "_handle", "_queue", "_running", "_waiter", "_waiter_is_work")

    def __init__(self) -> None:
        # A list made on the first send: most guards only ever get one message,
        # and queues stay a few entries long (a deque would cost 760 bytes each).
        self._queue: list[ControlMessage] | None = None
        self._waiter: asyncio.Future[Any] | None = None
        self._waiter_is_work = False
        """The waiter is the future the process ticks on (cancelled by a message), not ours."""
        self._running = False
        self._handle: RuntimeHandle | None = None

    # -- process side -------------------------------------------------------
    def runtime_ticker(self) -> RuntimeTicker:
        """Begin a run and return the ticker that delivers this guard's messages."""
        self._running = True
        return RuntimeTicker(self)

    def is_running(self) -> bool:
        """True from :meth:`runtime_ticker` until a shutdown message has been delivered."""
        return self._running

    async def block_until_shutdown(self) -> None:
        """Wait until a shutdown message arrives; other messages are dropped.

        Marks the guard running while it waits, like :meth:`runtime_ticker`.
        """
        self._running = True
        loop = None
        while True:
            queue = self._queue
            while queue:
                if queue.pop(0) is _SHUTDOWN:
                    self._running = False
                    return
            if loop is None:
                loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    def ready(self) -> None:
        """Signal that the current run is ready (call it from the process's own task).

        A child inserted with ``wait_ready=True`` counts as ``starting`` until
        it calls this; for any other child (or outside a manager) it is a
        harmless no-op. A restarted run must signal again.
        """
        signal_ready()

    # -- sender side --------------------------------------------------------
    def handle(self) -> RuntimeHandle:
        """The handle that sends messages to this guard (one per guard)."""
        handle = self._handle
        if handle is None:
            handle = self._handle = RuntimeHandle(self)
        return handle

    def send_nowait(self, message: ControlMessage) -> None:
        """Queue ``message`` and wake the process if it is waiting."""
        queue = self._queue
        if queue is None:
            self._queue = [message]
        else:
            queue.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if self._waiter_is_work:
                self._waiter = None  # tells the ticker that this cancellation was a message
                waiter.cancel()
            else:
                waiter.set_result(None)

    def __repr__(self) -> str:
        return f"<RuntimeGuard running={self._running} queued={len(self._queue or ())}>"


class RuntimeTicker:
    """Races a process's work against its guard's control messages."""

    __slots__ = ("_guard",)

    def __init__(self, guard: RuntimeGuard) -> None:
        self._guard = guard

    async def tick(self, awaitable: Awaitable[T]) -> ProcessOperation[T]:
        """Wait for ``awaitable`` or the next control message, whichever comes first.

        Returns ``Next(value)`` when the awaitable finished first (a queued
        message then waits for the next tick) and ``Control(message)`` when a
        message came first; the awaitable is then cancelled and awaited, as
        :func:`asyncio.wait_for` does. A message already queued is returned at
        once and the awaitable is closed without running. Exceptions of the
        awaitable propagate.
        """
        guard = self._guard
        queue = guard._queue
        if queue:
            return self._deliver(queue.pop(0), awaitable)
        if type(awaitable) is _FUTURE:
            # A plain future is raced with no second future: a message cancels it
            # (what happens to the work when a message comes first anyway) and
            # clears the guard's waiter, which tells that cancellation from any
            # other (the task's own, or the one of the future's owner).
            guard._waiter = awaitable
            guard._waiter_is_work = True
            try:
                value = await awaitable
            except asyncio.CancelledError:
                if guard._waiter is awaitable:  # not cancelled by a message
                    raise
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the task was cancelled too: that wins, the message stays queued
            else:
                if guard._waiter is awaitable:
                    return Next(value)
            finally:
                guard._waiter = None
                guard._waiter_is_work = False
            queue = guard._queue
            assert queue  # the message that cancelled the work
            return self._deliver(queue.pop(0), None)
        loop = asyncio.get_running_loop()
        # a task or future subclass is raced as it is (ensure_future's checks cost a few calls)
        fut = (
            awaitable if isinstance(awaitable, asyncio.Future) else asyncio.ensure_future(awaitable)
        )
        waiter: asyncio.Future[None] = loop.create_future()
        guard._waiter = waiter
        on_done = partial(_wake_on_done, waiter)
        fut.add_done_callback(on_done, context=_NO_CONTEXT)
        try:
            await waiter
        except asyncio.CancelledError:
            fut.remove_done_callback(on_done)
            fut.cancel()
            raise
        finally:
            guard._waiter = None
        if fut.done():
            return Next(fut.result())
        fut.remove_done_callback(on_done)
        fut.cancel()
        if isinstance(fut, asyncio.Task):  # a task needs to run its cancellation
            try:
                await fut
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        queue = guard._queue
        assert queue
        return self._deliver(queue.pop(0), None)

    def _deliver(self, message: ControlMessage, unused: object) -> Control:
        if unused is not None and asyncio.iscoroutine(unused):
            unused.close()
        if message is _RELOAD:  # compared by identity: an enum's hash is a Python call
            return _RELOAD_CONTROL
        if message is _SHUTDOWN:
            self._guard._running = False
            return _SHUTDOWN_CONTROL
        return Control(message)

    def __repr__(self) -> str:
        return f"<RuntimeTicker of {self._guard!r}>"


class RuntimeHandle(ProcessControlHandler):
    """Sends control messages to one :class:`RuntimeGuard`.

    All methods only queue a message: they never wait for the process to act.
    """

    __slots__ = ("_guard",)

    def __init__(self, guard: RuntimeGuard) -> None:
        self._guard = guard

    async def shutdown(self) -> None:
        """Queue :attr:`RuntimeControlMessage.SHUTDOWN`."""
        self._guard.send_nowait(_SHUTDOWN)

    async def reload(self) -> None:
        """Queue :attr:`RuntimeControlMessage.RELOAD`."""
        self._guard.send_nowait(RuntimeControlMessage.RELOAD)

    async def control(self, message: ControlMessage) -> None:
        """Queue any control message."""
        self._guard.send_nowait(message)

    async def custom(self, payload: Any) -> None:
        """Queue ``Custom(payload)``."""
        self._guard.send_nowait(Custom(payload))

    def control_nowait(self, message: RuntimeControlMessage) -> bool:
        cls = type(self)
        if cls is not RuntimeHandle and (
            cls.shutdown is not RuntimeHandle.shutdown or cls.reload is not RuntimeHandle.reload
        ):
            return False
        self._guard.send_nowait(message)
        return True
