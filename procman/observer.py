"""The observer protocol and the fan-out that delivers events to observers.

An observer is any object with ``on_event(event)``. It may also define
``wants(event_type) -> bool``; when every observer of a manager says no, the
manager does not even build the event (this is how the logging observer
costs nothing while the ``procman`` logger is disabled).

Contract for observers:

* ``on_event`` is called synchronously on the event loop thread, inline with
  supervision: it must be quick and must not block. Wrap slow sinks in
  :class:`procman.observe.ThreadedObserver`.
* An observer that raises never breaks supervision: whatever ``on_event``,
  ``wants`` or ``on_tree_start`` raise (any exception, ``CancelledError``,
  another ``BaseException``) the failing call is skipped, the first failure
  of each observer is logged on the ``procman`` logger with its traceback,
  later ones are only counted (:attr:`Fanout.errors`). ``KeyboardInterrupt``
  and ``SystemExit`` are the exceptions: they propagate, as everywhere in
  asyncio. A ``wants`` that raises counts as "wants everything".
* Optional hook ``on_tree_start(root)``: called once each time a *root*
  manager the observer is attached to starts, with that
  :class:`procman.ProcessManager`, before its children start. Metrics
  backends use it to read the tree's snapshot at scrape time without an
  explicit ``track()``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from procman.events import LifecycleEvent

if TYPE_CHECKING:
    from procman.manager import ProcessManager

__all__ = ["Fanout", "Observer"]

_log = logging.getLogger("procman")

E = TypeVar("E", bound=LifecycleEvent)


@runtime_checkable
class Observer(Protocol):
    """Receives lifecycle events."""

    def on_event(self, event: LifecycleEvent) -> None:
        """Handle one event. Must not block; exceptions are contained."""


class Fanout:
    """Delivers each event to a fixed tuple of observers, containing their failures."""

    __slots__ = ("_failed", "_filters", "errors", "observers")

    def __init__(self, observers: Iterable[Observer]) -> None:
        unique: list[Observer] = []
        for obs in observers:
            if not callable(getattr(obs, "on_event", None)):
                raise TypeError(
                    f"observer must have an on_event(event) method, got {type(obs).__name__}"
                )
            if not any(obs is seen for seen in unique):
                unique.append(obs)
        self.observers: tuple[Observer, ...] = tuple(unique)
        filters: list[Callable[[type[LifecycleEvent]], bool]] = []
        for obs in self.observers:
            wants = getattr(obs, "wants", None)
            if wants is None:
                filters = []
                break
            filters.append(wants)
        self._filters = tuple(filters)
        self._failed: set[int] = set()
        self.errors = 0

    def __bool__(self) -> bool:
        return bool(self.observers)

    def wants(self, event_type: type[LifecycleEvent]) -> bool:
        """Whether any observer wants events of ``event_type`` now."""
        if not self._filters:
            return bool(self.observers)
        for i, wants in enumerate(self._filters):
            try:
                if wants(event_type):
                    return True
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException:
                self._report(self.observers[i], f"wants({event_type.__name__})")
                return True
        return False

    def emit_new(self, event_type: type[E], build: Callable[[float], E]) -> None:
        """Deliver ``build(now)`` only if some observer wants ``event_type``.

        The one way procman emits: an event nobody wants is never built.
        ``now`` is :func:`time.monotonic`, the event's ``time``.
        """
        if self.observers and self.wants(event_type):
            self.emit(build(time.monotonic()))

    def emit(self, event: LifecycleEvent) -> None:
        """Deliver ``event`` to every observer; never raises (but KeyboardInterrupt/SystemExit)."""
        for obs in self.observers:
            try:
                obs.on_event(event)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException:
                self._report(obs, event.name)

    def tree_started(self, root: ProcessManager) -> None:
        """Call the optional ``on_tree_start(root)`` hook of every observer."""
        for obs in self.observers:
            hook = getattr(obs, "on_tree_start", None)
            if hook is None:
                continue
            try:
                hook(root)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException:
                self._report(obs, "on_tree_start")

    def extended(self, extra: Iterable[Observer]) -> Fanout:
        """A fan-out delivering to these observers and then ``extra``."""
        return Fanout((*self.observers, *extra))

    def _report(self, obs: Observer, where: str) -> None:
        self.errors += 1
        key = id(obs)
        if key in self._failed:
            return
        self._failed.add(key)
        _log.error(
            "procman observer %r raised on %s; this call was skipped, later failures of "
            "this observer are counted but not logged",
            obs,
            where,
            exc_info=True,
            extra={"procman_event": "procman.observer.error"},
        )


EMPTY = Fanout(())
