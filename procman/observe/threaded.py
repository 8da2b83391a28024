"""ThreadedObserver: hands events to a worker thread so a slow sink cannot stall supervision.

Observers are called inline on the event loop (see :mod:`procman.observer`);
one that blocks (a synchronous HTTP call, a slow disk) would stall every
process of the loop. Wrap such an observer:

    root = ProcessManager("app", observers=[ThreadedObserver(SlowAuditSink())])

Guarantees:

* ``on_event`` never blocks: it appends to a bounded queue and returns.
* Events reach the wrapped observer in order, on one worker thread.
* When the queue is full the event is dropped and counted (:attr:`dropped`);
  the first drop is logged. Supervision never waits for the sink.
* :meth:`close` (also registered with :mod:`atexit`) stops the worker after
  it delivered what was queued, waiting at most ``timeout`` seconds.

The wrapped observer runs in another thread: it must not touch asyncio
objects of the loop, and the context of the child's task (an OpenTelemetry
span, say) is not current there. Tracing observers must not be wrapped.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
from typing import Any

from procman.events import LifecycleEvent
from procman.observer import Observer

__all__ = ["ThreadedObserver"]

_log = logging.getLogger("procman")
_STOP: Any = object()


class ThreadedObserver:
    """Delivers events to ``inner`` on a daemon worker thread through a bounded queue."""

    def __init__(self, inner: Observer, *, maxsize: int = 100_000) -> None:
        if not callable(getattr(inner, "on_event", None)):
            raise TypeError(f"inner must be an observer, got {type(inner).__name__}")
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be a positive int, got {maxsize!r}")
        self.inner = inner
        self.dropped = 0
        self.errors = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self._wants = getattr(inner, "wants", None)
        self._closed = False
        self._thread = threading.Thread(
            target=self._work, name=f"procman-observer-{type(inner).__name__}", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)

    def wants(self, event_type: type[LifecycleEvent]) -> bool:
        if self._closed:
            return False
        wants = self._wants
        return True if wants is None else bool(wants(event_type))

    def on_event(self, event: LifecycleEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1:
                _log.warning("procman: %r is not keeping up; events are being dropped", self.inner)

    def _work(self) -> None:
        inner = self.inner
        get = self._queue.get
        while True:
            event = get()
            if event is _STOP:
                return
            if type(event) is threading.Event:  # a flush() marker
                event.set()
                continue
            try:
                inner.on_event(event)
            except Exception:
                self.errors += 1
                if self.errors == 1:
                    _log.exception("procman: threaded observer %r raised", inner)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the queue is empty (True) or ``timeout`` passed (False)."""
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued, then stop the worker (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def __repr__(self) -> str:
        return f"ThreadedObserver({self.inner!r}, dropped={self.dropped})"
