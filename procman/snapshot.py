"""Read-only snapshots of a running tree, cheap enough for every metrics scrape."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["ChildSnapshot", "ChildState", "ManagerPhase", "SupervisorSnapshot"]


class ChildState(enum.Enum):
    """Where a child is in its life (``value`` is the metrics label)."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    BACKOFF = "backoff"
    STOPPED = "stopped"
    FAILED = "failed"
    CANCELLED = "cancelled"

    # Members are singletons compared by identity: hash them by identity too (Enum's
    # own __hash__ is a Python-level call, paid per child in every state count).
    __hash__ = object.__hash__


class ManagerPhase(enum.Enum):
    """The phase of a :class:`procman.ProcessManager`."""

    CREATED = "created"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"

    __hash__ = object.__hash__


class ChildSnapshot(NamedTuple):
    """One child at the moment of the snapshot (an immutable named tuple).

    ``started_at`` is the wall-clock time (``time.time()``) of its latest
    (re)start; ``supervisor`` is the nested tree when the child is a manager.
    A named tuple rather than a dataclass: a snapshot of 10,000 children
    builds 10,000 of them, and a tuple is built about six times faster (use
    ``_replace()`` to derive a changed copy).
    """

    name: str
    state: ChildState
    started_at: float
    restart_count: int
    supervisor: SupervisorSnapshot | None = None
    ready: bool = True
    """Whether this child counts as ready (a nested manager: its whole subtree)."""


@dataclass(frozen=True, slots=True)
class SupervisorSnapshot:
    """A manager and its children at the moment of the snapshot."""

    path: str
    name: str
    phase: ManagerPhase
    children: tuple[ChildSnapshot, ...]

    def state_counts(self) -> Counter[ChildState]:
        """How many direct children are in each state."""
        return Counter(child.state for child in self.children)

    def walk(self) -> Iterator[SupervisorSnapshot]:
        """This supervisor and every nested one, depth first."""
        yield self
        for child in self.children:
            if child.supervisor is not None:
                yield from child.supervisor.walk()

    @property
    def ready(self) -> bool:
        """Running and every live child ready (a nested manager: its whole subtree).

        A child is not ready while it is ``starting`` (a ``wait_ready`` child
        that has not signalled, or not yet started by an ordered start) or in
        ``backoff``; children that ended do not make a tree unready.
        """
        if self.phase is not ManagerPhase.RUNNING:
            return False
        return all(child.ready for child in self.children)

    @property
    def alive(self) -> bool:
        """The root manager is running or stopping gracefully."""
        return self.phase in (ManagerPhase.RUNNING, ManagerPhase.STOPPING)
