"""Graceful shutdown, per-child timeouts, abandonment and reload (internal)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Iterable
from typing import Any

from procman._state import RELOAD, SHUTDOWN, ManagerState, await_, cancel_timer, log
from procman.child import ChildRecord
from procman.events import (
    ProcessAbandoned,
    ProcessStopTimedOut,
    ReloadCompleted,
    ReloadRequested,
    ShutdownCompleted,
    ShutdownRequested,
)
from procman.runnable import RuntimeControlMessage
from procman.snapshot import ChildState, ManagerPhase

__all__ = ["ShutdownMixin"]


class ShutdownMixin(ManagerState):
    """Stops children: all at once or in reverse order, each within its grace period."""

    def _all_ended(self) -> None:
        for timer in (self._grace_timer, self._abandon_timer):
            if timer is not None:
                timer.cancel()
        self._grace_timer = self._abandon_timer = None
        self._doomed.clear()
        started = self._shutdown_started
        self._shutdown_started = None  # reported once
        fan = self._fanout
        if started is not None:
            fan.emit_new(
                ShutdownCompleted,
                lambda now: ShutdownCompleted(
                    supervisor=self._path,
                    time=now,
                    duration=now - started,
                    forced=self._forced,
                    start_time=started,
                ),
            )
        ended = self._ended
        if ended is not None and not ended.done():
            ended.set_result(None)

    def request_shutdown(self) -> None:
        """Begin a graceful shutdown without waiting for it (safe in any phase).

        Before start the request is kept: the next ``process_start`` returns at
        once without starting children.
        """
        if self._phase is ManagerPhase.CREATED or self._phase is ManagerPhase.STOPPED:
            self._shutdown_pending = True
        else:
            self._begin_shutdown("requested", None)

    def _drop_queued(self) -> None:
        """Children in backoff, waiting for a group restart or an ordered start never run."""
        cascade = self._cascade
        if cascade is not None:
            cancel_timer(cascade.timer)
            self._cascade = None
            self._emit_restart_completed(cascade.trigger, cascade.t0, "cancelled")
        for rec in self._waiting:
            t0 = self._restart_t0.pop(rec, None)
            if t0 is not None:  # a ONE_FOR_ONE restart in backoff: it never happens
                self._emit_restart_completed(rec, t0, "cancelled")
            cancel_timer(rec.timer)
            rec.timer = None
            rec.cascade = False
            rec.state = ChildState.STOPPED
            self._retire(rec)
        self._waiting.clear()
        self._restart_t0.clear()
        self._pending.clear()
        self._decisions.clear()
        self._starting = None

    def _begin_shutdown(self, reason: str, exc: BaseException | None) -> None:
        if self._phase is not ManagerPhase.RUNNING:
            return
        self._phase = ManagerPhase.STOPPING
        self._shutdown_started = time.monotonic()
        self._drop_queued()
        live = list(self._live.values())
        fan = self._fanout
        fan.emit_new(
            ShutdownRequested,
            lambda now: ShutdownRequested(
                supervisor=self._path,
                time=now,
                reason=reason,
                children=len(live),
                exception=exc,
            ),
        )
        loop = self._loop
        if not live or loop is None:
            if not self._busy():
                self._all_ended()
            return
        grace = self._grace
        self._grace_deadline = loop.time() + grace
        self._grace_timer = loop.call_later(grace, self._grace_expired)
        if self._ordered:
            self._stop_order = sorted(live, key=lambda r: r.seq)
            self._stop_next()
            return
        for rec in live:
            rec.state = ChildState.STOPPING
            timeout = rec.spec.shutdown_timeout
            if timeout is not None and timeout < grace:
                cancel_timer(rec.timer)
                rec.timer = loop.call_later(timeout, self._force_cancel, rec)
            self._send(rec, SHUTDOWN)

    def _stop_next(self) -> None:
        """Ordered shutdown: ask the latest-started child still running to stop."""
        order = self._stop_order
        loop = self._loop
        if not order or loop is None:
            return
        while order:
            rec = order.pop()
            task = rec.task
            if task is None or self._live.get(task) is not rec:
                continue
            self._stopping = rec
            rec.state = ChildState.STOPPING
            left = max(self._grace_deadline - loop.time(), 0.0)
            timeout = rec.spec.shutdown_timeout
            cancel_timer(rec.timer)
            rec.timer = loop.call_later(
                left if timeout is None else min(timeout, left), self._force_cancel, rec
            )
            self._send(rec, SHUTDOWN)
            return

    def _send(self, rec: ChildRecord, message: RuntimeControlMessage) -> asyncio.Task[None] | None:
        """Deliver ``message`` to one child: synchronously when its handle can.

        Any handle works: ``control_nowait`` is optional, ``shutdown()`` /
        ``reload()`` may be coroutines or plain methods. Whatever they raise is
        logged; the child then runs on until the grace period ends.
        """
        try:
            handle = rec.runnable.process_handle()
            nowait = getattr(handle, "control_nowait", None)
            if nowait is not None and nowait(message) is True:
                return None
            result = handle.shutdown() if message is SHUTDOWN else handle.reload()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:
            log.exception(
                "procman: delivering %s to %s/%s failed", message.value, self._path, rec.name
            )
            return None
        if not inspect.isawaitable(result):
            return None
        assert self._loop is not None
        coro = result if asyncio.iscoroutine(result) else await_(result)
        task = self._loop.create_task(coro)
        self._control_tasks.add(task)
        task.add_done_callback(self._control_done)
        return task

    def _control_done(self, task: asyncio.Task[None]) -> None:
        self._control_tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("procman: a control handler of %s raised", self._path, exc_info=exc)

    def _force_cancel(self, rec: ChildRecord) -> None:
        """A child's own shutdown timeout expired: cancel it."""
        rec.timer = None
        task = rec.task
        if task is None or task.done() or self._live.get(task) is not rec:
            return
        timeout = rec.spec.shutdown_timeout
        self._cancel_child(rec, self._grace if timeout is None else timeout, time.monotonic())
        if self._phase is ManagerPhase.STOPPING:
            self._doom((rec,))

    def _cancel_child(self, rec: ChildRecord, period: float, now: float) -> None:
        rec.force_cancelled = True
        fan = self._fanout
        fan.emit_new(
            ProcessStopTimedOut,
            lambda now: ProcessStopTimedOut(
                supervisor=self._path, child=rec.name, time=now, grace_period=period
            ),
        )
        assert rec.task is not None
        rec.task.cancel()
        self._forced += 1

    def _grace_expired(self) -> None:
        self._grace_timer = None
        now = time.monotonic()
        live = list(self._live.values())
        for rec in live:
            if not rec.force_cancelled:
                self._cancel_child(rec, self._grace, now)
        self._doom(live)

    def _cancel_children(self) -> None:
        """Cancelled from outside: cancel every child now."""
        if self._phase is ManagerPhase.RUNNING:
            self._begin_shutdown("cancelled", None)
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None
        for task in self._live:
            task.cancel()
        self._doom(list(self._live.values()))

    def _doom(self, cancelled: Iterable[ChildRecord]) -> None:
        """Give children just cancelled ``cancel_timeout`` to end (at most what our parent gives).

        Each cancelled child has its own deadline (a child cancelled early by
        its own ``shutdown_timeout`` does not shorten the others'). A nested
        manager's deadline is set a little before the one its parent gave it,
        so a subtree winding down its own stubborn children finishes (and
        reports them) before the parent would abandon the whole subtree.
        """
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        deadline = now + self._cancel_timeout
        parent, mine = self._parent, self._parent_record
        parent_deadline = None
        if parent is not None and mine is not None:
            parent_deadline = parent.abandon_deadline_of(mine)
        if parent_deadline is not None and parent_deadline > now:
            margin = min(0.01, (parent_deadline - now) * 0.1)
            deadline = min(deadline, parent_deadline - margin)
        doomed = self._doomed
        for rec in cancelled:
            if doomed.get(rec, deadline) >= deadline:
                doomed[rec] = deadline
        self._arm_abandon(deadline)

    def _arm_abandon(self, deadline: float) -> None:
        timer = self._abandon_timer
        if timer is not None:
            if timer.when() <= deadline:
                return
            timer.cancel()
        assert self._loop is not None
        self._abandon_timer = self._loop.call_at(deadline, self._abandon)

    def abandon_deadline_of(self, rec: ChildRecord) -> float | None:
        """Loop time after which this manager stops waiting for ``rec`` (None: not cancelled)."""
        return self._doomed.get(rec)

    def _abandon(self) -> None:
        """Abandon the cancelled children whose deadline has come; wait on for the others."""
        self._abandon_timer = None
        assert self._loop is not None
        now = self._loop.time()
        live = self._live
        later: float | None = None
        for rec, deadline in list(self._doomed.items()):
            task = rec.task
            if task is None or live.get(task) is not rec:
                del self._doomed[rec]  # ended (or restarted as another task)
            elif deadline > now:
                later = deadline if later is None else min(later, deadline)
            else:
                self._give_up(task, rec)
        if later is not None:
            self._arm_abandon(later)
        if not live:
            self._all_ended()

    def _abandon_all(self) -> None:
        """Cancelled twice: stop waiting for any child still running."""
        cancel_timer(self._abandon_timer)
        self._abandon_timer = None
        for task, rec in list(self._live.items()):
            self._give_up(task, rec)
        if not self._live:
            self._all_ended()

    def _give_up(self, task: asyncio.Task[None], rec: ChildRecord) -> None:
        if task.done():  # ended already; its done callback is queued and will report it
            return
        nested = rec.runnable
        if isinstance(nested, ManagerState) and not nested._busy():
            return  # a subtree that has wound down ends on its next step: not stubborn
        del self._live[task]
        self._doomed.pop(rec, None)
        rec.abandoned = True
        self._report_abandoned(rec)
        log.error(
            "procman: %s/%s ignored cancellation for %.1fs; abandoning its task %r",
            self._path,
            rec.name,
            self._cancel_timeout,
            task,
        )

    def _report_abandoned(self, rec: ChildRecord) -> None:
        self._fanout.emit_new(
            ProcessAbandoned,
            lambda now: ProcessAbandoned(
                supervisor=self._path, child=rec.name, time=now, restart_count=rec.restart_count
            ),
        )

    async def reload(self) -> None:
        """Forward a reload to every running child concurrently and wait for them.

        Handlers still running after the grace period are cancelled (result
        ``timeout``); a handler that raises is counted (result ``error``).
        """
        if self._phase is not ManagerPhase.RUNNING:
            return
        live = list(self._live.values())
        fan = self._fanout
        t0 = time.monotonic()
        fan.emit_new(
            ReloadRequested,
            lambda now: ReloadRequested(supervisor=self._path, time=now, children=len(live)),
        )
        pending = [t for rec in live if (t := self._send(rec, RELOAD)) is not None]
        result: Any = "ok"
        errors = 0
        try:
            if pending:
                done, not_done = await asyncio.wait(pending, timeout=self._grace)
                if not_done:
                    result = "timeout"
                errors = sum(1 for t in done if not t.cancelled() and t.exception() is not None)
                if errors and result == "ok":
                    result = "error"
        except asyncio.CancelledError:
            result = "cancelled"
            raise
        finally:
            for task in pending:
                if not task.done():
                    task.cancel()
            fan.emit_new(
                ReloadCompleted,
                lambda now: ReloadCompleted(
                    supervisor=self._path,
                    time=now,
                    duration=now - t0,
                    result=result,
                    errors=errors,
                    start_time=t0,
                ),
            )
