"""Per-child bookkeeping and the observed run of one child.

:class:`ChildRecord` is what a manager keeps for each child. The manager
whose children run in the current context is in :data:`CURRENT_SUPERVISOR`
(set once per manager, not per child: a per-child context variable write
would double the cost of spawning). :func:`current_child` finds the record
of the child whose task is running, which is how nested managers find their
parent and how wrappers such as :class:`procman.builtin.RestartSupervisor`
report their runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from procman.events import (
    ProcessCancelled,
    ProcessFailed,
    ProcessStarted,
    ProcessStopped,
)
from procman.observer import EMPTY, Fanout
from procman.snapshot import ChildState

if TYPE_CHECKING:
    from procman.runnable import Runnable

__all__ = [
    "CURRENT_SUPERVISOR",
    "ChildRecord",
    "Owner",
    "current_child",
    "run_observed",
    "signal_ready",
]


class Owner(Protocol):
    """What a child record needs of its supervisor."""

    @property
    def path(self) -> str: ...

    @property
    def fanout(self) -> Fanout: ...

    def shutdown_requested(self) -> bool: ...

    def record_of(self, task: asyncio.Task[Any]) -> ChildRecord | None: ...

    def mark_ready(self, rec: ChildRecord) -> None: ...


class ChildRecord:
    """Mutable bookkeeping of one child (O(1) to create, update and drop)."""

    __slots__ = (
        "abandoned",
        "force_cancelled",
        "name",
        "owner",
        "ready",
        "restart_count",
        "runnable",
        "started_at",
        "state",
        "task",
    )

    def __init__(self, owner: Owner, runnable: Runnable, name: str) -> None:
        self.owner = owner
        self.runnable = runnable
        self.name = name
        self.state = ChildState.STARTING
        self.started_at = time.time()
        self.restart_count = 0
        self.force_cancelled = False
        self.abandoned = False
        self.ready = False
        self.task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<ChildRecord {self.owner.path}/{self.name} {self.state.value}>"


CURRENT_SUPERVISOR: ContextVar[Owner | None] = ContextVar("procman_supervisor", default=None)
"""The supervisor whose children run in this context (None outside supervision)."""


def current_child() -> ChildRecord | None:
    """The record of the child whose task is running now (None outside a child's own task)."""
    owner = CURRENT_SUPERVISOR.get()
    if owner is None:
        return None
    task = asyncio.current_task()
    return owner.record_of(task) if task is not None else None


def signal_ready() -> None:
    """Mark the current run of the child whose task is running as ready.

    What ``guard.ready()`` and ``ctx.ready()`` call. Outside a supervised
    child's own task (or for a child already ready) it does nothing.
    """
    rec = current_child()
    if rec is not None and not rec.ready:
        rec.owner.mark_ready(rec)


class _Standalone:
    """The owner of a runnable that runs outside any manager."""

    path = ""
    fanout = EMPTY

    def shutdown_requested(self) -> bool:
        return False

    def record_of(self, task: asyncio.Task[Any]) -> ChildRecord | None:
        return None

    def mark_ready(self, rec: ChildRecord) -> None:
        rec.ready = True


STANDALONE = _Standalone()


async def run_observed(rec: ChildRecord, start: Callable[[], Awaitable[None]]) -> None:
    """Run ``start()`` as one run of ``rec``, emitting its start and terminal events.

    Emits :class:`ProcessStarted` before and exactly one terminal event after,
    both in the calling task. With no observer this only awaits ``start()``.
    """
    rec.state = ChildState.RUNNING
    fan = rec.owner.fanout
    if not fan.observers:
        await start()
        return
    t0 = time.monotonic()
    if fan.wants(ProcessStarted):
        fan.emit(
            ProcessStarted(
                supervisor=rec.owner.path,
                child=rec.name,
                time=t0,
                restart_count=rec.restart_count,
            )
        )
    try:
        await start()
    except asyncio.CancelledError:
        if not rec.abandoned and fan.wants(ProcessCancelled):
            now = time.monotonic()
            fan.emit(
                ProcessCancelled(
                    supervisor=rec.owner.path,
                    child=rec.name,
                    time=now,
                    restart_count=rec.restart_count,
                    duration=now - t0,
                    forced=rec.force_cancelled,
                    requested=rec.force_cancelled or rec.owner.shutdown_requested(),
                )
            )
        raise
    except Exception as exc:
        if not rec.abandoned and fan.wants(ProcessFailed):
            now = time.monotonic()
            fan.emit(
                ProcessFailed(
                    supervisor=rec.owner.path,
                    child=rec.name,
                    time=now,
                    restart_count=rec.restart_count,
                    duration=now - t0,
                    exception=exc,
                )
            )
        raise
    if not rec.abandoned and fan.wants(ProcessStopped):
        now = time.monotonic()
        fan.emit(
            ProcessStopped(
                supervisor=rec.owner.path,
                child=rec.name,
                time=now,
                restart_count=rec.restart_count,
                duration=now - t0,
            )
        )
