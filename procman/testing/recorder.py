"""EventRecorder: an observer that keeps every lifecycle event, for tests.

Attach it like any observer and read what happened, typed::

    from procman import ProcessManager
    from procman.events import ProcessFailed
    from procman.testing import EventRecorder

    rec = EventRecorder()
    root = ProcessManager("root", observers=[rec])
    ...
    (failed,) = rec.of(ProcessFailed)  # list[ProcessFailed]: failed.exception type-checks
    assert rec.names(child="db") == ["procman.child.starting", "procman.child.started", ...]

As a context manager (the model is structlog's ``testing.capture_logs``)
:func:`capture_events` attaches a fresh recorder to a tree for the block; it
records only inside the block, and waiters still pending at the end fail at
once instead of running into their timeout::

    with capture_events(root) as rec:
        await root.process_start()
    assert rec.of(ProcessStarted)

(An ``EventRecorder`` is a context manager too: ``with EventRecorder() as rec``
closes it at the end.)

A recorder also wakes waiters: :func:`procman.testing.wait_for_event` resolves
a future the moment a matching event is recorded (no polling), and
:func:`procman.testing.wait_for_state` re-checks its condition on every event.

Observers are called on the event loop's thread; the recorder also accepts
events from another thread (wrapped in a ``ThreadedObserver``): waiters are
then woken through ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from procman.events import ChildEvent, LifecycleEvent

if TYPE_CHECKING:
    from procman.manager import ProcessManager
    from procman.observer import Observer

__all__ = ["E", "EventRecorder", "capture_events", "describe_event"]

E = TypeVar("E", bound=LifecycleEvent)
"""A lifecycle event class: ``rec.of(ProcessFailed)`` is a ``list[ProcessFailed]``."""


def describe_event(event: LifecycleEvent) -> str:
    """One short line for an event: ``procman.child.failed root/db`` (used in messages)."""
    text = f"{event.name} {event.path}"
    exc = getattr(event, "exception", None)
    if isinstance(exc, BaseException):
        text += f" ({type(exc).__name__}: {exc})"
    return text


class _Waiter:
    """A future resolved with the ``count``-th event that ``match`` accepts."""

    __slots__ = ("count", "future", "match", "seen")

    def __init__(
        self,
        future: asyncio.Future[LifecycleEvent],
        match: Callable[[LifecycleEvent], bool],
        count: int,
    ) -> None:
        self.future = future
        self.match = match
        self.count = count
        self.seen = 0


def _resolve(future: asyncio.Future[LifecycleEvent], event: LifecycleEvent) -> None:
    if not future.done():
        future.set_result(event)


def _fail(future: asyncio.Future[LifecycleEvent], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _on_loop(future: asyncio.Future[LifecycleEvent], fn: Callable[[], None]) -> None:
    """Run ``fn`` (settling ``future``) now on the future's loop, or schedule it there."""
    loop = future.get_loop()
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        fn()
    elif not loop.is_closed():
        loop.call_soon_threadsafe(fn)


class EventRecorder:
    """Records every lifecycle event it receives; an :class:`procman.Observer`.

    ``events`` is the list of events in arrival order. The recorder defines no
    ``wants()``, so a manager builds every event for it.
    """

    def __init__(self) -> None:
        self.events: list[LifecycleEvent] = []
        self.roots: list[ProcessManager] = []
        """The root managers this recorder saw start (``on_tree_start``), oldest first."""
        self._waiters: list[_Waiter] = []
        self._closed = False
        self._lock = threading.RLock()

    # -- the observer protocol ----------------------------------------------------
    def on_event(self, event: LifecycleEvent) -> None:
        """Record ``event`` and wake the waiters it satisfies (ignored once closed).

        A waiter's condition that raises fails that waiter with the exception.
        """
        wake: list[tuple[asyncio.Future[LifecycleEvent], Callable[[], None]]] = []
        with self._lock:
            if self._closed:
                return
            self.events.append(event)
            for waiter in self._waiters:
                future = waiter.future
                if future.done():
                    continue
                try:
                    matched = waiter.match(event)
                except Exception as exc:
                    wake.append((future, functools.partial(_fail, future, exc)))
                    continue
                if matched:
                    waiter.seen += 1
                    if waiter.seen >= waiter.count:
                        wake.append((future, functools.partial(_resolve, future, event)))
        for future, settle in wake:
            _on_loop(future, settle)

    def on_tree_start(self, root: ProcessManager) -> None:
        """The optional observer hook: remember the root managers it is attached to."""
        if not any(r is root for r in self.roots):
            self.roots.append(root)

    # -- reading ------------------------------------------------------------------
    def of(self, event_type: type[E], *, child: str | None = None) -> list[E]:
        """The recorded events of ``event_type`` (subclasses included), typed as such.

        ``child`` keeps only the events about the child of that name.
        """
        return [
            e
            for e in self.events
            if isinstance(e, event_type) and (child is None or _child_of(e) == child)
        ]

    def names(self, child: str | None = None) -> list[str]:
        """The dotted names of the recorded events, optionally of one child only."""
        return [e.name for e in self.events if child is None or _child_of(e) == child]

    def clear(self) -> None:
        """Forget the recorded events (waiters keep waiting for new ones)."""
        with self._lock:
            self.events.clear()

    def last(self, n: int = 10) -> list[LifecycleEvent]:
        """The ``n`` most recent events."""
        return self.events[-n:] if n > 0 else []

    def describe(self, n: int = 10) -> str:
        """What was seen, for failure messages: the count and the last ``n`` events."""
        total = len(self.events)
        if not total:
            if not self.roots and not self._closed:
                return (
                    "no events recorded, and the recorder never saw a tree start "
                    "(is it attached? ProcessManager(..., observers=[rec]))"
                )
            return "no events recorded"
        shown = self.last(n)
        head = f"{total} events recorded" + (f", the last {len(shown)}" if total > n else "")
        return head + ":\n" + "\n".join(f"  {describe_event(e)}" for e in shown)

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[LifecycleEvent]:
        return iter(list(self.events))

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<EventRecorder events={len(self.events)}{state}>"

    # -- waking waiters -----------------------------------------------------------
    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (the recorder then ignores new events)."""
        return self._closed

    def subscribe(
        self,
        match: Callable[[LifecycleEvent], bool],
        *,
        count: int = 1,
        recorded: bool = False,
    ) -> asyncio.Future[LifecycleEvent]:
        """A future resolved with the ``count``-th event that ``match`` accepts.

        With ``recorded=True`` the events recorded so far count too (checked
        atomically with the registration, so no event is missed or counted
        twice). The building block of the waiting helpers: call it on the
        event loop, await the future (with a timeout) and :meth:`unsubscribe`
        it afterwards. The future fails at once when the recorder is closed.
        """
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count!r}")
        future: asyncio.Future[LifecycleEvent] = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._closed:
                future.set_exception(RuntimeError(f"{self!r} is closed"))
                return future
            waiter = _Waiter(future, match, count)
            if recorded:
                for event in self.events:
                    if match(event):
                        waiter.seen += 1
                        if waiter.seen >= count:
                            future.set_result(event)
                            return future
            self._waiters.append(waiter)
        return future

    def unsubscribe(self, future: asyncio.Future[LifecycleEvent]) -> None:
        """Stop waking ``future`` (cancels it when still pending)."""
        with self._lock:
            self._waiters = [w for w in self._waiters if w.future is not future]
        if not future.done():
            future.cancel()

    def close(self) -> None:
        """Stop recording; pending waiters fail at once with a ``RuntimeError``."""
        with self._lock:
            self._closed = True
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            future = waiter.future
            exc = RuntimeError(f"{self!r} was closed while a waiter was pending")
            _on_loop(future, functools.partial(_fail, future, exc))

    def __enter__(self) -> EventRecorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _child_of(event: LifecycleEvent) -> str | None:
    return event.child if isinstance(event, ChildEvent) else None


@contextmanager
def capture_events(*managers: ProcessManager) -> Iterator[EventRecorder]:
    """A fresh :class:`EventRecorder` that records only inside the ``with`` block.

    Given managers (typically the root of the tree under test: nested managers
    inherit it), the recorder is added to their observers for the block with
    :meth:`ProcessManager.set_observers`, so they must not be running yet. A
    manager left at the default observers keeps its default logging observer
    next to the recorder. At the end their observers are restored, except on
    a manager still running (the closed recorder then ignores its events).
    Without managers, attach the recorder yourself (``observers=[rec]``).
    The recorded events stay readable after the block::

        with capture_events(root) as rec:
            await root.process_start()
        assert [e.child for e in rec.of(ProcessFailed)] == []
    """
    from procman.snapshot import ManagerPhase

    rec = EventRecorder()
    attached: list[tuple[ProcessManager, tuple[Observer, ...] | None]] = []
    try:
        for manager in managers:
            own = manager.observers
            if own is None:
                from procman.observe.logging import LoggingObserver

                manager.set_observers((LoggingObserver(), rec))
            else:
                manager.set_observers((*own, rec))
            attached.append((manager, own))
        with rec:
            yield rec
    finally:
        for manager, own in attached:
            if manager.phase not in (ManagerPhase.RUNNING, ManagerPhase.STOPPING):
                manager.set_observers(own)
