"""Tracked root managers: weak references, thread-safe snapshots, health and readiness.

Guarantees:

* Tracking never keeps a manager alive: roots are held by weak reference
  and dropped once collected.
* :meth:`TrackedRoots.snapshots` may be called from any thread. A manager's
  state belongs to its event loop, so from another thread (a scrape served by
  ``prometheus_client.start_http_server``, an OpenTelemetry reader thread or
  :class:`~procman_metrics.MetricsServer`'s render thread) the snapshot is
  taken on that loop with ``call_soon_threadsafe`` and waited for at most
  ``timeout`` seconds; a root whose loop does not answer in time is skipped
  (and logged), never read racily.
* :func:`tree_document` turns snapshots into the JSON-ready ``/tree`` document;
  :func:`child_ready` is the one place that decides whether a child counts as
  ready.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from procman import (
    ChildSnapshot,
    ChildState,
    ManagerPhase,
    ProcessManager,
    SupervisorSnapshot,
)
from procman.lowlevel import current_supervisor

__all__ = [
    "TrackedRoots",
    "child_ready",
    "current_root",
    "is_alive",
    "snapshot_of",
    "tree_document",
    "unready_children",
]

_log = logging.getLogger("procman.metrics")

SNAPSHOT_TIMEOUT = 5.0


def snapshot_of(
    manager: ProcessManager, timeout: float = SNAPSHOT_TIMEOUT
) -> SupervisorSnapshot | None:
    """``manager.snapshot()`` taken on the manager's loop thread; None if it timed out."""
    loop = manager.loop
    if loop is None or loop.is_closed() or not loop.is_running():
        return manager.snapshot()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        return manager.snapshot()
    done: concurrent.futures.Future[SupervisorSnapshot] = concurrent.futures.Future()

    def take() -> None:
        if done.set_running_or_notify_cancel():
            try:
                done.set_result(manager.snapshot())
            except BaseException as exc:
                done.set_exception(exc)

    try:
        loop.call_soon_threadsafe(take)
        return done.result(timeout)
    except RuntimeError:  # the loop closed in between: nothing runs on it any more
        return manager.snapshot()
    except concurrent.futures.TimeoutError:
        done.cancel()
        _log.warning(
            "procman metrics: the event loop of %r did not answer a snapshot request "
            "within %.1fs; its tree is left out of this scrape",
            manager,
            timeout,
        )
        return None


def is_alive(manager: ProcessManager) -> bool:
    """The manager is running or stopping gracefully (one attribute read, any thread)."""
    return manager.phase in (ManagerPhase.RUNNING, ManagerPhase.STOPPING)


def current_root() -> ProcessManager | None:
    """The root manager of the tree the calling task runs in (None outside a tree)."""
    owner = current_supervisor()
    root: ProcessManager | None = None
    while isinstance(owner, ProcessManager):
        root = owner
        owner = owner.parent
    return root


class TrackedRoots:
    """A set of root managers held by weak reference (duplicates are ignored)."""

    __slots__ = ("_lock", "_refs")

    def __init__(self) -> None:
        self._refs: list[weakref.ref[ProcessManager]] = []
        self._lock = threading.Lock()

    def add(self, manager: ProcessManager) -> None:
        """Track ``manager`` (a no-op if it is tracked already)."""
        if not isinstance(manager, ProcessManager):
            raise TypeError(f"track() needs a ProcessManager, got {type(manager).__name__}")
        with self._lock:
            self._refs = [r for r in self._refs if r() is not None]
            if not any(r() is manager for r in self._refs):
                self._refs.append(weakref.ref(manager))

    def discard(self, manager: ProcessManager) -> None:
        """Stop tracking ``manager``."""
        with self._lock:
            self._refs = [r for r in self._refs if r() is not None and r() is not manager]

    def managers(self) -> list[ProcessManager]:
        """The tracked managers still alive, in tracking order."""
        with self._lock:
            refs = list(self._refs)
        return [m for r in refs if (m := r()) is not None]

    def __len__(self) -> int:
        return len(self.managers())

    def __bool__(self) -> bool:
        return bool(self.managers())

    def snapshots(self) -> Iterator[SupervisorSnapshot]:
        """One snapshot per tracked root (roots whose loop did not answer are skipped)."""
        for manager in self.managers():
            snap = snapshot_of(manager)
            if snap is not None:
                yield snap

    def healthy(self) -> bool:
        """Every tracked root is alive (running or stopping gracefully); True if none."""
        return all(is_alive(manager) for manager in self.managers())

    def ready(self) -> bool:
        """Every tracked tree is ready (see :attr:`SupervisorSnapshot.ready`); True if none."""
        for manager in self.managers():
            snap = snapshot_of(manager)
            if snap is None or not snap.ready:
                return False
        return True


_UP = (ChildState.STARTING, ChildState.RUNNING, ChildState.STOPPING)
_WAITING = (ChildState.STARTING, ChildState.BACKOFF)


def unready_children(snap: SupervisorSnapshot, limit: int = 10) -> list[str]:
    """Up to ``limit`` reasons why ``snap`` is not ready (``path state``), empty when ready."""
    reasons: list[str] = []
    for sup in snap.walk():
        if sup.phase is not ManagerPhase.RUNNING:
            reasons.append(f"{sup.path} {sup.phase.value}")
        for child in sup.children:
            # a nested supervisor gives its own reasons (walk() visits it)
            if child.supervisor is None and not child_ready(child):
                why = child.state.value if child.state in _WAITING else "not ready"
                reasons.append(f"{sup.path}/{child.name} {why}")
        if len(reasons) >= limit:
            break
    return reasons[:limit]


def child_ready(child: ChildSnapshot) -> bool:
    """Whether the child counts as ready: :attr:`ChildSnapshot.ready`.

    The one place ``/readyz`` and ``/tree`` decide it.
    """
    return child.ready


def _supervisor_document(snap: SupervisorSnapshot, now: float) -> dict[str, Any]:
    return {
        "path": snap.path,
        "name": snap.name,
        "state": snap.phase.value,
        "ready": not unready_children(snap, limit=1),
        "children": [_child_document(snap.path, child, now) for child in snap.children],
    }


def _child_document(parent: str, child: ChildSnapshot, now: float) -> dict[str, Any]:
    up = child.state in _UP and child.started_at > 0
    return {
        "path": f"{parent}/{child.name}",
        "name": child.name,
        "state": child.state.value,
        "ready": child_ready(child),
        "restarts": child.restart_count,
        "started_at": child.started_at if child.started_at > 0 else None,
        "uptime_seconds": round(max(0.0, now - child.started_at), 3) if up else None,
        "supervisor": (
            _supervisor_document(child.supervisor, now) if child.supervisor is not None else None
        ),
    }


def tree_document(
    snapshots: Iterable[SupervisorSnapshot], now: float, unavailable: Iterable[str] = ()
) -> dict[str, Any]:
    """The ``/tree`` document of ``snapshots``; ``now`` is the wall-clock time (``time.time()``).

    ``{"time": now, "roots": [supervisor, ...], "unavailable": [path, ...]}``
    (``unavailable``: the roots whose snapshot timed out or failed) where a supervisor is
    ``{"path", "name", "state" (its phase), "ready" (the whole subtree, as
    :func:`unready_children` and ``/readyz`` decide it),
    "children": [child, ...]}`` and a child is ``{"path", "name", "state",
    "ready", "restarts", "started_at" (wall clock, null before the first
    start), "uptime_seconds" (since the latest start, null unless starting,
    running or stopping), "supervisor" (the nested supervisor, or null)}``.
    """
    return {
        "time": now,
        "roots": [_supervisor_document(snap, now) for snap in snapshots],
        "unavailable": list(unavailable),
    }
