"""The observer protocol and the fan-out that delivers events to observers.

An observer is any object with ``on_event(event)``. It may also define
``wants(event_type) -> bool``; when every observer of a manager says no, the
manager does not even build the event (this is how the logging observer
costs nothing while the ``procman`` logger is disabled).

Contract for observers:

* ``on_event`` is called synchronously on the event loop thread, inline with
  supervision: it must be quick and must not block. Wrap slow sinks in
  :class:`procman.observe.QueueObserver`-style hand-offs.
* An observer that raises never breaks supervision: the failing call is
  skipped, the first failure of each observer is logged on the ``procman``
  logger with its traceback, later ones are only counted
  (:attr:`Fanout.errors`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol, runtime_checkable

from procman.events import LifecycleEvent

__all__ = ["Fanout", "Observer"]

_log = logging.getLogger("procman")


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
        for wants in self._filters:
            try:
                if wants(event_type):
                    return True
            except Exception:
                return True
        return False

    def emit(self, event: LifecycleEvent) -> None:
        """Deliver ``event`` to every observer; never raises."""
        for obs in self.observers:
            try:
                obs.on_event(event)
            except Exception:
                self._report(obs, event)

    def extended(self, extra: Iterable[Observer]) -> Fanout:
        """A fan-out delivering to these observers and then ``extra``."""
        return Fanout((*self.observers, *extra))

    def _report(self, obs: Observer, event: LifecycleEvent) -> None:
        self.errors += 1
        key = id(obs)
        if key in self._failed:
            return
        self._failed.add(key)
        _log.error(
            "procman observer %r raised on %s; this call was skipped, later failures of "
            "this observer are counted but not logged",
            obs,
            event.name,
            exc_info=True,
            extra={"procman_event": "procman.observer.error"},
        )


EMPTY = Fanout(())
