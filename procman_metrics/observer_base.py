"""What both metrics observers share: tracked roots and dispatch by event type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from procman import LifecycleEvent, ProcessManager
from procman_metrics.tracking import TrackedRoots

__all__ = ["MetricsObserver"]


class MetricsObserver:
    """Base of the metrics observers.

    Subclasses fill :attr:`_handlers` (event type -> handler); only those
    event types are built for them (:meth:`wants`). :attr:`roots` holds the
    trees whose live state is read at collection time: the roots this
    observer is attached to (:meth:`on_tree_start`) and those given to
    :meth:`track`.
    """

    roots: TrackedRoots
    _handlers: dict[type[LifecycleEvent], Callable[[Any], None]]

    # -- tree tracking ---------------------------------------------------------------
    def on_tree_start(self, root: ProcessManager) -> None:
        """Observer hook: a root manager this observer is attached to started; track it.

        So attaching the observer (directly or through ``PROCMAN_OBSERVERS``)
        is enough for the children gauge and for health and readiness; the
        root is held weakly, as with :meth:`track`.
        """
        self.roots.add(root)

    def track(self, manager: ProcessManager) -> ProcessManager:
        """Report ``manager``'s tree at collection time (returns it).

        Several roots may be tracked; they are held weakly, so tracking never
        keeps a tree alive.
        """
        self.roots.add(manager)
        return manager

    def untrack(self, manager: ProcessManager) -> None:
        """Stop reporting ``manager``'s tree."""
        self.roots.discard(manager)

    def healthy(self) -> bool:
        """Every tracked root is alive (True when none is tracked)."""
        return self.roots.healthy()

    def ready(self) -> bool:
        """Every tracked tree is ready: all children started, none in backoff."""
        return self.roots.ready()

    # -- observer --------------------------------------------------------------------
    def wants(self, event_type: type[LifecycleEvent]) -> bool:
        """Only the events that change a metric are built for this observer."""
        return event_type in self._handlers

    def on_event(self, event: LifecycleEvent) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)
