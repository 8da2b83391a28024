"""Snapshots of a manager's subtree, cheap enough for every scrape (internal)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from procman._kinds import EXPOSES, MANAGER, kind_of
from procman._state import ManagerState, log
from procman.child import ChildRecord
from procman.snapshot import ChildSnapshot, ChildState, SupervisorSnapshot

__all__ = ["SnapshotMixin"]

_LIVE_STATES = frozenset(
    (ChildState.STARTING, ChildState.RUNNING, ChildState.STOPPING, ChildState.BACKOFF)
)
_snap = tuple.__new__  # ChildSnapshot is a NamedTuple: build it without keyword parsing
_STARTING = ChildState.STARTING
_RUNNING = ChildState.RUNNING
_BACKOFF = ChildState.BACKOFF


def _has_begun(task: asyncio.Task[Any]) -> bool:
    """Whether a child task's coroutine has started running (not merely scheduled)."""
    coro: Any = task.get_coro()
    try:  # inspect.getcoroutinestate(coro) != CORO_CREATED, without its calls
        return bool(coro.cr_suspended or coro.cr_running or coro.cr_frame is None)
    except AttributeError:  # not a coroutine (a custom task factory): count it as begun
        return True


class SnapshotMixin(ManagerState):
    """``snapshot()``: a read-only picture of the subtree, O(children)."""

    def snapshot(self) -> SupervisorSnapshot:
        """A read-only picture of this manager and its subtree (O(children)).

        Meant for the event loop's thread. From another thread it does not
        fail (the bookkeeping is copied in one step under the GIL) but may be
        a moment stale; ``procman_metrics`` takes it on :attr:`loop` instead.
        """
        records = [*self._finished, *self._live.values(), *self._waiting, *self._pending]
        wall = time.time() - time.monotonic()  # run_start (monotonic) + wall = wall-clock
        child = self._child_snapshot
        return SupervisorSnapshot(
            path=self._path,
            name=self._name,
            phase=self._phase,
            children=tuple([child(rec, wall) for rec in records]),
        )

    @staticmethod
    def _child_snapshot(rec: ChildRecord, wall: float) -> ChildSnapshot:
        runnable = rec.runnable
        state = rec.state
        task = rec.task
        if state is _STARTING and rec.ready and task is not None and _has_begun(task):
            state = _RUNNING
        kind = kind_of(type(runnable))
        sub = _nested_snapshot(runnable, kind) if kind & (MANAGER | EXPOSES) else None
        if state not in _LIVE_STATES:
            ready = True  # ended children do not make a tree unready
        elif sub is not None:
            ready = sub.ready
        else:
            ready = rec.ready and state is not _STARTING and state is not _BACKOFF
        # ChildSnapshot(name, state, started_at, restart_count, supervisor, ready)
        return _snap(
            ChildSnapshot, (rec.name, state, rec.run_start + wall, rec.restart_count, sub, ready)
        )


def _nested_snapshot(runnable: Any, kind: int) -> SupervisorSnapshot | None:
    """The snapshot of the tree a manager child is, or a wrapper exposes (None if none)."""
    nested = runnable
    if kind & EXPOSES:
        try:
            nested = runnable.procman_nested_manager()
        except Exception:  # a user hook must not break snapshots
            log.exception("procman: %r.procman_nested_manager() raised", runnable)
            return None
    return nested.snapshot() if isinstance(nested, SnapshotMixin) else None
