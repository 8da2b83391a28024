"""Runs: starting a child's run as a task, and what happens when it ends (internal)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Coroutine
from typing import Any

from procman._kinds import KINDS, MANAGER, REPORTS_RUNS, kind_of
from procman._state import ManagerState, await_, cancel_timer
from procman.child import ChildRecord, emit_end, run_observed, start_of
from procman.errors import TerminationSignal
from procman.events import ProcessStarted, ProcessStarting
from procman.policy import Restart
from procman.snapshot import ChildState, ManagerPhase

__all__ = ["RunsMixin"]

_BARE, _ENDS, _OBSERVED = 0, 1, 2  # how a run is watched (RunsMixin._run_mode)


async def _raise(exc: BaseException) -> None:
    raise exc


class RunsMixin(ManagerState):
    """Starts runs (one task each, no wrapper unless an observer needs one) and ends them."""

    def _first_run(self, rec: ChildRecord) -> None:
        self._announce(rec)
        self._run(rec)

    def _announce(self, rec: ChildRecord) -> None:
        self._fanout.emit_new(
            ProcessStarting,
            lambda now: ProcessStarting(supervisor=self._path, child=rec.name, time=now),
        )

    def _run_mode(self) -> int:
        """How runs started now are watched: by nobody, by their end, or from their start."""
        fan = self._fanout
        if not fan.observers:
            return _BARE
        # Observers that want only how runs end (the logging backend at WARNING) get
        # the terminal event from the done callback: no wrapper frame per child.
        return _OBSERVED if fan.wants(ProcessStarted) else _ENDS

    def _run(self, rec: ChildRecord, mode: int | None = None) -> None:
        """Start one run of ``rec`` as a task of this manager (``mode``: see _run_mode)."""
        runnable = rec.runnable
        spec = rec.spec
        context = self._context
        loop = self._loop
        assert loop is not None and context is not None
        kind = KINDS.get(type(runnable))
        if kind is None:
            kind = kind_of(type(runnable))
        if spec.wait_ready or kind & MANAGER:
            rec.ready = False
            self._unready += 1
            if spec.wait_ready:
                rec.ready_timer = loop.call_later(spec.ready_timeout, self._ready_expired, rec)
        coro: Coroutine[Any, Any, None] | None = None
        rec.reports_end = False
        if not kind & REPORTS_RUNS:  # lowlevel.ReportsOwnRuns emits its runs' events itself
            if mode is None:
                mode = self._run_mode()
            if spec.wait_ready or mode == _OBSERVED:
                # Events are emitted inside the child's task (where an OpenTelemetry
                # span can be made current for the whole run); ready() is awaited there.
                coro = run_observed(rec, runnable.process_start)
            elif mode == _ENDS:
                rec.reports_end = True
        if coro is None:
            # The child's own coroutine is the task (no wrapper frame). snapshot() tells
            # STARTING from RUNNING by the coroutine's state.
            try:
                start = runnable.process_start()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # a plain def that raised: the run fails
                start = _raise(exc)
            if asyncio.iscoroutine(start):
                coro = start
            elif inspect.isawaitable(start):
                coro = await_(start)
            else:
                coro = start_of(runnable, start)  # fails with a clear TypeError inside the task
        # With an eager task factory the child's first step runs inside create_task():
        # record_of() and mark_ready() find the record through _spawning meanwhile.
        self._spawning = rec
        try:
            task = loop.create_task(coro, context=context.copy())
        finally:
            self._spawning = None
        rec.task = task
        self._live[task] = rec
        task.add_done_callback(self._done_callback, context=context)

    def record_of(self, task: asyncio.Task[Any]) -> ChildRecord | None:
        """The record of a running child task of this manager (O(1))."""
        rec = self._live.get(task)
        if rec is None and self._spawning is not None:
            return self._spawning  # its first step runs eagerly, before create_task returned
        return rec

    # -- a child ended -------------------------------------------------------------
    def _child_done(self, task: asyncio.Task[None]) -> None:
        rec = self._live.pop(task, None)
        if task.cancelled():
            exc: BaseException | None = None
            state = ChildState.CANCELLED
        else:
            exc = task.exception()
            state = ChildState.STOPPED if exc is None else ChildState.FAILED
        if rec is None:  # abandoned earlier; its late end changes nothing
            return
        rec.state = state
        if rec.reports_end:  # ran without the wrapper: its terminal event comes from here
            emit_end(rec, self._fanout, rec.run_start, exc, cancelled=task.cancelled())
        if not rec.ready:
            rec.ready = True
            self._unready -= 1
            cancel_timer(rec.ready_timer)
            rec.ready_timer = None
        if rec.timer is not None:
            rec.timer.cancel()
            rec.timer = None
        if self._phase is not ManagerPhase.RUNNING:  # a shutdown: nothing restarts
            if not self._auto_cleanup:
                self._finished.append(rec)
            if exc is not None:
                self._child_failed(rec, exc)
            if rec is self._stopping:
                self._stopping = None
                self._stop_next()
            if not self._live:  # the shutdown dropped every queued child
                self._all_ended()
            return
        if isinstance(exc, TerminationSignal):  # a signal stops the tree, whatever the policy
            self._retire(rec)
            self._child_failed(rec, exc)
        elif rec.cascade:
            self._cascade_member_ended(rec)
        else:
            spec = rec.spec
            restart = spec.restart
            if restart is Restart.PERMANENT or (restart is Restart.TRANSIENT and exc is not None):
                self._needs_restart(rec, exc)
            else:
                self._retire(rec)
                if spec.significant and state is ChildState.STOPPED:
                    self._begin_shutdown("significant", None)
                elif rec is self._starting:
                    self._starting = None
                    self._start_next()
        if not self._busy():
            self._all_ended()
        elif not self._signalled or self._ready_waiters:
            self._check_ready()
