"""Readiness and the ordered start (internal)."""

from __future__ import annotations

import asyncio
import time

from procman._state import ManagerState, cancel_timer, wake_all
from procman.child import ChildRecord
from procman.events import ProcessReady
from procman.snapshot import ChildState, ManagerPhase

__all__ = ["ReadinessMixin"]


class ReadinessMixin(ManagerState):
    """Tracks which children are ready; starts an ordered manager's children in turn."""

    def mark_ready(self, rec: ChildRecord) -> None:
        """A child's current run signalled readiness (``ctx.ready()`` / ``guard.ready()``)."""
        if rec.ready:
            return
        if rec is not self._spawning and (rec.task is None or self._live.get(rec.task) is not rec):
            return
        rec.ready = True
        self._unready -= 1
        if rec.state is ChildState.STARTING:
            rec.state = ChildState.RUNNING
        cancel_timer(rec.ready_timer)
        rec.ready_timer = None
        fan = self._fanout
        fan.emit_new(
            ProcessReady,
            lambda now: ProcessReady(
                supervisor=self._path,
                child=rec.name,
                time=now,
                restart_count=rec.restart_count,
                duration=now - rec.run_start,
            ),
        )
        if rec is self._starting:
            self._starting = None
            self._start_next()
        self._check_ready()

    def _ready_expired(self, rec: ChildRecord) -> None:
        rec.ready_timer = None
        task = rec.task
        if rec.ready or task is None or task.done() or self._live.get(task) is not rec:
            return
        rec.ready_timed_out = True
        task.cancel()

    def is_ready(self) -> bool:
        """Whether the tree is ready now: running, every child ready, an ordered start done."""
        return (
            self._phase is ManagerPhase.RUNNING
            and not self._unready
            and not self._waiting
            and not self._pending
            and self._starting is None
        )

    def _check_ready(self) -> None:
        if not self.is_ready():
            return
        if not self._signalled:
            self._signalled = True
            rec = self._parent_record
            if rec is not None:
                rec.owner.mark_ready(rec)
        if self._ready_waiters:
            wake_all(self._ready_waiters)

    async def wait_ready(self) -> None:
        """Return once the whole tree is ready (at once when it is, or when it stopped).

        Waits for the start first when the manager has not started yet.
        """
        if self._phase is ManagerPhase.CREATED:
            await self.wait_started()
        if self._phase is not ManagerPhase.RUNNING or self.is_ready():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._ready_waiters.append(waiter)
        await waiter

    def _start_next(self) -> None:
        """Ordered start: run queued children until one must become ready first.

        Paused during a group restart: the queue goes on once the group has
        restarted (its members go first, in their start order).
        """
        pending = self._pending
        while (
            self._starting is None
            and self._cascade is None
            and pending
            and self._phase is ManagerPhase.RUNNING
        ):
            rec = pending.popleft()
            if rec.task is None:
                rec.run_start = time.monotonic()  # its turn: the run (and ready_timeout) begin
                self._first_run(rec)
            else:
                self._rerun(rec)
            if rec.spec.wait_ready and not rec.ready and self._live.get(rec.task) is rec:  # type: ignore[arg-type]
                self._starting = rec
