"""ProcessManager: supervises a set of child processes as one unit.

Guarantees (each is tested):

* ``process_start`` returns ``None`` when every child ended without error and
  re-raises the *first* child exception (the same object, with a note naming
  the child's path) after shutting the other children down gracefully.
* A graceful shutdown asks every child to stop, waits for them, cancels the
  ones still running after ``shutdown_grace_period`` and stops waiting for a
  child that ignores cancellation ``cancel_timeout`` seconds later (it is
  reported as abandoned). Nothing waits forever.
* Errors beat cancellation: cancelled from outside after a child failed, the
  manager raises that failure rather than :class:`asyncio.CancelledError`.
* Bookkeeping is O(1) per child event; the shutdown is driven by task
  completion with one timer for the whole grace period.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
from collections.abc import Awaitable, Coroutine, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from procman._validate import check_name, check_runnable, seconds
from procman.child import CURRENT_SUPERVISOR, ChildRecord, Owner, run_observed
from procman.errors import ManagerStateError
from procman.events import (
    ProcessAbandoned,
    ProcessStarting,
    ProcessStopTimedOut,
    ReloadCompleted,
    ReloadRequested,
    ShutdownCompleted,
    ShutdownRequested,
)
from procman.observer import EMPTY, Fanout, Observer
from procman.runnable import ProcessControlHandler, Runnable, RuntimeControlMessage
from procman.snapshot import ChildSnapshot, ChildState, ManagerPhase, SupervisorSnapshot

if TYPE_CHECKING:
    from typing import Self

__all__ = ["ProcessManager", "ProcessManagerBuilder"]

_log = logging.getLogger("procman")

_SHUTDOWN = RuntimeControlMessage.SHUTDOWN
_RELOAD = RuntimeControlMessage.RELOAD
_NOTE_PREFIX = "procman: raised by process "
DEFAULT_GRACE_PERIOD = 30.0
DEFAULT_CANCEL_TIMEOUT = 5.0
_LIVE_STATES = frozenset(
    (ChildState.STARTING, ChildState.RUNNING, ChildState.STOPPING, ChildState.BACKOFF)
)


def _default_observers() -> tuple[Observer, ...]:
    from procman.observe.logging import LoggingObserver

    return (LoggingObserver(),)


async def _await(awaitable: Awaitable[None]) -> None:
    await awaitable


def _has_begun(task: asyncio.Task[Any]) -> bool:
    """Whether a child task's coroutine has started running (not merely scheduled)."""
    coro: Any = task.get_coro()
    if not inspect.iscoroutine(coro):
        return True
    return inspect.getcoroutinestate(coro) != inspect.CORO_CREATED


def _wake_all(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
    waiters.clear()


def _note_origin(exc: BaseException, path: str) -> None:
    notes = getattr(exc, "__notes__", ())
    if not any(isinstance(n, str) and n.startswith(_NOTE_PREFIX) for n in notes):
        exc.add_note(_NOTE_PREFIX + path)


class ProcessManager(Runnable):
    """Runs child processes, forwards control messages and handles their failures.

    A manager is itself a :class:`Runnable`, so managers nest into trees; a
    nested manager's path is ``parent-path/name`` and it inherits its
    parent's observers. Use :meth:`insert` before start and :meth:`add` while
    running. A manager can be started again after it stopped (for example by
    a :class:`~procman.builtin.RestartSupervisor`): it then runs the inserted
    children again; children added at run time are not re-added.
    """

    def __init__(
        self,
        name: str = "process-manager",
        *,
        auto_cleanup: bool = True,
        shutdown_grace_period: float | timedelta = DEFAULT_GRACE_PERIOD,
        cancel_timeout: float | timedelta = DEFAULT_CANCEL_TIMEOUT,
        observers: Iterable[Observer] | None = None,
    ) -> None:
        self._name = check_name(name)
        if not isinstance(auto_cleanup, bool):
            raise TypeError(f"auto_cleanup must be a bool, got {auto_cleanup!r}")
        self._auto_cleanup = auto_cleanup
        self._grace = seconds(shutdown_grace_period, "shutdown_grace_period")
        self._cancel_timeout = seconds(cancel_timeout, "cancel_timeout")
        self._own_observers: tuple[Observer, ...] | None = None
        if observers is not None:
            self._own_observers = Fanout(observers).observers
        self._inserted: list[Runnable] = []
        self._phase = ManagerPhase.CREATED
        self._shutdown_pending = False
        self._path = self._name
        self._fanout: Fanout = EMPTY
        self._parent: Owner | None = None
        self._done_callback = self._child_done
        self._live: dict[asyncio.Task[None], ChildRecord] = {}
        self._finished: list[ChildRecord] = []
        self._first_error: BaseException | None = None
        self._context: contextvars.Context | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ended: asyncio.Future[None] | None = None
        self._stopped_waiters: list[asyncio.Future[None]] = []
        self._started_waiters: list[asyncio.Future[None]] = []
        self._control_tasks: set[asyncio.Task[None]] = set()
        self._grace_timer: asyncio.TimerHandle | None = None
        self._abandon_timer: asyncio.TimerHandle | None = None
        self._abandon_deadline: float | None = None
        self._shutdown_started: float | None = None
        self._forced = 0
        self._handle = ManagerHandle(self)

    # -- configuration -----------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def path(self) -> str:
        """Where this manager is in the tree (``root/db``); its name until started."""
        return self._path

    @property
    def fanout(self) -> Fanout:
        """The observers this manager reports to (its own plus inherited ones)."""
        return self._fanout

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the manager runs (or last ran) on; None before the first start."""
        return self._loop

    @property
    def parent(self) -> Owner | None:
        """The supervisor this manager runs under (None for a root), set at start."""
        return self._parent

    @property
    def phase(self) -> ManagerPhase:
        return self._phase

    @property
    def shutdown_grace_period(self) -> float:
        return self._grace

    def process_name(self) -> str:
        return self._name

    def process_handle(self) -> ManagerHandle:
        return self._handle

    def shutdown_requested(self) -> bool:
        """True once a shutdown has begun (or was asked for before start)."""
        return self._shutdown_pending or self._phase is ManagerPhase.STOPPING

    def insert(self, runnable: Runnable) -> Self:
        """Register a child before the manager starts (returns the manager)."""
        check_runnable(runnable)
        if self._phase is ManagerPhase.RUNNING or self._phase is ManagerPhase.STOPPING:
            raise ManagerStateError(
                f"manager {self._path!r} is already running: use add() to add a child "
                "to a running manager"
            )
        self._inserted.append(runnable)
        return self

    def add(self, runnable: Runnable) -> None:
        """Start a new child in this running manager at once.

        Raises :class:`ManagerStateError` before start (use :meth:`insert`),
        during a shutdown and after the manager ended.
        """
        check_runnable(runnable)
        phase = self._phase
        if phase is ManagerPhase.RUNNING:
            self._spawn(runnable)
            return
        if phase is ManagerPhase.CREATED:
            msg = "has not started yet: use insert() to register children before start"
        elif phase is ManagerPhase.STOPPING:
            msg = "is shutting down: add() is refused during a shutdown"
        else:
            msg = "has ended: add() needs a running manager"
        raise ManagerStateError(f"manager {self._path!r} {msg}")

    # -- running -----------------------------------------------------------------
    async def process_start(self) -> None:
        """Run every child until all have ended; re-raise the first failure."""
        if self._phase is ManagerPhase.RUNNING or self._phase is ManagerPhase.STOPPING:
            raise ManagerStateError(f"manager {self._path!r} is already running")
        parent = self._parent = CURRENT_SUPERVISOR.get()
        self._setup_scope(parent)
        self._live = {}
        self._finished = []
        self._first_error = None
        self._shutdown_started = None
        self._forced = 0
        if self._shutdown_pending:
            self._shutdown_pending = False
            self._phase = ManagerPhase.STOPPED
            return
        loop = self._loop = asyncio.get_running_loop()
        self._phase = ManagerPhase.RUNNING
        token = CURRENT_SUPERVISOR.set(self)
        self._context = contextvars.copy_context()
        CURRENT_SUPERVISOR.reset(token)
        for runnable in self._inserted:
            self._spawn(runnable)
        _wake_all(self._started_waiters)
        cancelled = False
        try:
            while self._live:
                ended = self._ended = loop.create_future()
                try:
                    await ended
                except asyncio.CancelledError:
                    if cancelled:  # cancelled twice: stop waiting, report who is left
                        self._abandon()
                        break
                    cancelled = True
                    self._cancel_children()
        finally:
            self._finish()
        error = self._first_error
        if error is not None:
            self._first_error = None
            raise error
        if cancelled:
            raise asyncio.CancelledError

    def _setup_scope(self, parent: Owner | None) -> None:
        own = self._own_observers
        if parent is not None and parent.path:
            self._path = f"{parent.path}/{self._name}"
            inherited = parent.fanout
            self._fanout = inherited.extended(own) if own else inherited
        else:
            self._path = self._name
            self._fanout = Fanout(_default_observers() if own is None else own)

    def _spawn(self, runnable: Runnable) -> None:
        rec = ChildRecord(self, runnable, runnable.process_name())
        fan = self._fanout
        context = self._context
        assert self._loop is not None and context is not None
        coro: Coroutine[Any, Any, None] | None = None
        if fan.observers:
            if fan.wants(ProcessStarting):
                now = time.monotonic()
                fan.emit(ProcessStarting(supervisor=self._path, child=rec.name, time=now))
            if not getattr(runnable, "procman_reports_runs", False):
                coro = run_observed(rec, runnable.process_start)
        if coro is None:
            # The child's own coroutine is the task (no wrapper frame): a runnable that
            # reports its own runs, or no observer at all. snapshot() tells STARTING
            # from RUNNING by the coroutine's state.
            start = runnable.process_start()
            coro = start if asyncio.iscoroutine(start) else _await(start)
        task = self._loop.create_task(coro, context=context.copy())
        rec.task = task
        self._live[task] = rec
        task.add_done_callback(self._done_callback, context=context)

    def record_of(self, task: asyncio.Task[Any]) -> ChildRecord | None:
        """The record of a running child task of this manager (O(1))."""
        return self._live.get(task)

    def mark_ready(self, rec: ChildRecord) -> None:
        """A child's current run signalled readiness."""
        rec.ready = True

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
        if not self._auto_cleanup:
            self._finished.append(rec)
        if exc is not None:
            self._child_failed(rec, exc)
        if not self._live:
            self._all_ended()

    def _child_failed(self, rec: ChildRecord, exc: BaseException) -> None:
        _note_origin(exc, f"{self._path}/{rec.name}")
        if self._first_error is None:
            self._first_error = exc
        self._begin_shutdown("failure", exc)

    def _all_ended(self) -> None:
        for timer in (self._grace_timer, self._abandon_timer):
            if timer is not None:
                timer.cancel()
        self._grace_timer = self._abandon_timer = None
        started = self._shutdown_started
        fan = self._fanout
        if started is not None and fan.observers and fan.wants(ShutdownCompleted):
            now = time.monotonic()
            fan.emit(
                ShutdownCompleted(
                    supervisor=self._path,
                    time=now,
                    duration=now - started,
                    forced=self._forced,
                    start_time=started,
                )
            )
        ended = self._ended
        if ended is not None and not ended.done():
            ended.set_result(None)

    def _finish(self) -> None:
        self._phase = ManagerPhase.STOPPED
        for timer in (self._grace_timer, self._abandon_timer):
            if timer is not None:
                timer.cancel()
        self._grace_timer = self._abandon_timer = None
        self._abandon_deadline = None
        self._ended = None
        _wake_all(self._started_waiters)
        _wake_all(self._stopped_waiters)

    # -- shutdown ----------------------------------------------------------------
    def request_shutdown(self) -> None:
        """Begin a graceful shutdown without waiting for it (safe in any phase).

        Before start the request is kept: the next ``process_start`` returns at
        once without starting children.
        """
        if self._phase is ManagerPhase.CREATED or self._phase is ManagerPhase.STOPPED:
            self._shutdown_pending = True
        else:
            self._begin_shutdown("requested", None)

    def _begin_shutdown(self, reason: str, exc: BaseException | None) -> None:
        if self._phase is not ManagerPhase.RUNNING:
            return
        self._phase = ManagerPhase.STOPPING
        now = self._shutdown_started = time.monotonic()
        live = list(self._live.values())
        fan = self._fanout
        if fan.observers and fan.wants(ShutdownRequested):
            fan.emit(
                ShutdownRequested(
                    supervisor=self._path,
                    time=now,
                    reason=reason,
                    children=len(live),
                    exception=exc,
                )
            )
        for rec in live:
            rec.state = ChildState.STOPPING
            self._send(rec, _SHUTDOWN)
        if self._live and self._loop is not None:
            self._grace_timer = self._loop.call_later(self._grace, self._grace_expired)

    def _send(self, rec: ChildRecord, message: RuntimeControlMessage) -> asyncio.Task[None] | None:
        """Deliver ``message`` to one child: synchronously when its handle can."""
        try:
            handle = rec.runnable.process_handle()
            if handle.control_nowait(message):
                return None
            coro = handle.shutdown() if message is _SHUTDOWN else handle.reload()
        except Exception:
            _log.exception(
                "procman: delivering %s to %s/%s failed", message.value, self._path, rec.name
            )
            return None
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._control_tasks.add(task)
        task.add_done_callback(self._control_done)
        return task

    def _control_done(self, task: asyncio.Task[None]) -> None:
        self._control_tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            _log.error("procman: a control handler of %s raised", self._path, exc_info=exc)

    def _grace_expired(self) -> None:
        self._grace_timer = None
        live = list(self._live.values())
        fan = self._fanout
        emit = fan.observers and fan.wants(ProcessStopTimedOut)
        now = time.monotonic()
        for rec in live:
            rec.force_cancelled = True
            if emit:
                fan.emit(
                    ProcessStopTimedOut(
                        supervisor=self._path,
                        child=rec.name,
                        time=now,
                        grace_period=self._grace,
                    )
                )
            assert rec.task is not None
            rec.task.cancel()
        self._forced += len(live)
        self._arm_abandon()

    def _cancel_children(self) -> None:
        """Cancelled from outside: cancel every child now."""
        if self._phase is ManagerPhase.RUNNING:
            self._begin_shutdown("cancelled", None)
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None
        for task in list(self._live):
            task.cancel()
        self._arm_abandon()

    def _arm_abandon(self) -> None:
        """Give cancelled children ``cancel_timeout`` to end, never longer than our parent gives us.

        A nested manager's deadline is set a little before its parent's, so a
        subtree winding down its own stubborn children finishes (and reports
        them) before the parent would abandon the whole subtree.
        """
        loop = self._loop
        if not self._live or self._abandon_timer is not None or loop is None:
            return
        now = loop.time()
        deadline = now + self._cancel_timeout
        parent_deadline = getattr(self._parent, "_abandon_deadline", None)
        if parent_deadline is not None and parent_deadline > now:
            margin = min(0.01, (parent_deadline - now) * 0.1)
            deadline = min(deadline, parent_deadline - margin)
        self._abandon_deadline = deadline
        self._abandon_timer = loop.call_at(deadline, self._abandon)

    def _abandon(self) -> None:
        self._abandon_timer = None
        fan = self._fanout
        now = time.monotonic()
        for task, rec in list(self._live.items()):
            if task.done():  # ended already; its done callback is queued and will report it
                continue
            del self._live[task]
            rec.abandoned = True
            if fan.observers and fan.wants(ProcessAbandoned):
                fan.emit(
                    ProcessAbandoned(
                        supervisor=self._path,
                        child=rec.name,
                        time=now,
                        restart_count=rec.restart_count,
                    )
                )
            _log.error(
                "procman: %s/%s ignored cancellation for %.1fs; abandoning its task %r",
                self._path,
                rec.name,
                self._cancel_timeout,
                task,
            )
        if not self._live:
            self._all_ended()

    async def wait_started(self) -> None:
        """Return once ``process_start`` has started the children (so :meth:`add` works).

        Waits only while the manager has not started yet; returns at once in
        any other phase, and when the manager stops before it got that far (a
        shutdown asked for before start).
        """
        if self._phase is not ManagerPhase.CREATED:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._started_waiters.append(waiter)
        await waiter

    async def wait_stopped(self) -> None:
        """Return once the manager is not running (at once if it never started)."""
        if self._phase is ManagerPhase.STOPPED or self._phase is ManagerPhase.CREATED:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._stopped_waiters.append(waiter)
        await waiter

    def _is_own_descendant(self) -> bool:
        """Whether the current task runs inside this manager's subtree."""
        owner: Any = CURRENT_SUPERVISOR.get()
        while owner is not None:
            if owner is self:
                return True
            owner = getattr(owner, "_parent", None)
        return False

    # -- reload ------------------------------------------------------------------
    async def _reload(self) -> None:
        if self._phase is not ManagerPhase.RUNNING:
            return
        live = list(self._live.values())
        fan = self._fanout
        t0 = time.monotonic()
        if fan.observers and fan.wants(ReloadRequested):
            fan.emit(ReloadRequested(supervisor=self._path, time=t0, children=len(live)))
        pending = [t for rec in live if (t := self._send(rec, _RELOAD)) is not None]
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
            if fan.observers and fan.wants(ReloadCompleted):
                now = time.monotonic()
                fan.emit(
                    ReloadCompleted(
                        supervisor=self._path,
                        time=now,
                        duration=now - t0,
                        result=result,
                        errors=errors,
                        start_time=t0,
                    )
                )

    # -- introspection -------------------------------------------------------------
    def snapshot(self) -> SupervisorSnapshot:
        """A read-only picture of this manager and its subtree (O(children)).

        Meant for the event loop's thread. From another thread it does not
        fail (the bookkeeping is copied in one step under the GIL) but may be
        a moment stale; ``procman_metrics`` takes it on :attr:`loop` instead.
        """
        live = tuple(self._live.values())
        children = [self._child_snapshot(rec) for rec in tuple(self._finished)]
        children.extend(self._child_snapshot(rec) for rec in live)
        return SupervisorSnapshot(
            path=self._path, name=self._name, phase=self._phase, children=tuple(children)
        )

    @staticmethod
    def _child_snapshot(rec: ChildRecord) -> ChildSnapshot:
        runnable = rec.runnable
        state = rec.state
        if state is ChildState.STARTING and rec.task is not None and _has_begun(rec.task):
            state = ChildState.RUNNING
        nested = runnable if isinstance(runnable, ProcessManager) else None
        if nested is None:
            inner = getattr(runnable, "child", None)
            if isinstance(inner, ProcessManager):
                nested = inner
        sub = nested.snapshot() if nested is not None else None
        if sub is not None:
            ready = sub.ready or state not in _LIVE_STATES
        else:
            ready = state not in (ChildState.STARTING, ChildState.BACKOFF)
        return ChildSnapshot(
            name=rec.name,
            state=state,
            started_at=rec.started_at,
            restart_count=rec.restart_count,
            supervisor=sub,
            ready=ready,
        )

    def __len__(self) -> int:
        """Number of children that have not ended yet."""
        return len(self._live)

    def __repr__(self) -> str:
        return f"<ProcessManager {self._path!r} {self._phase.value} children={len(self._live)}>"


class ManagerHandle(ProcessControlHandler):
    """Controls a :class:`ProcessManager` and, through it, its whole subtree."""

    __slots__ = ("_manager",)

    def __init__(self, manager: ProcessManager) -> None:
        self._manager = manager

    async def shutdown(self) -> None:
        """Shut the tree down gracefully and return once every child has ended.

        Before start the request is kept (the manager then returns at once
        when started). Called from inside the manager's own subtree it only
        begins the shutdown, since waiting there would wait for itself.
        """
        manager = self._manager
        manager.request_shutdown()
        if not manager._is_own_descendant():
            await manager.wait_stopped()

    async def reload(self) -> None:
        """Forward a reload to every running child concurrently and wait for them.

        Handlers still running after the grace period are cancelled (result
        ``timeout``); a handler that raises is counted (result ``error``).
        """
        await self._manager._reload()

    def control_nowait(self, message: RuntimeControlMessage) -> bool:
        if message is _SHUTDOWN:
            self._manager.request_shutdown()
            return True
        return False


class ProcessManagerBuilder:
    """Fluent construction of a :class:`ProcessManager`; every setter checks its value."""

    def __init__(self) -> None:
        self._name = "process-manager"
        self._children: list[Runnable] = []
        self._auto_cleanup = True
        self._grace = DEFAULT_GRACE_PERIOD
        self._cancel_timeout = DEFAULT_CANCEL_TIMEOUT
        self._observers: list[Observer] | None = None

    def name(self, name: str) -> Self:
        self._name = check_name(name)
        return self

    def pre_insert(self, runnable: Runnable) -> Self:
        self._children.append(check_runnable(runnable, "pre_insert() argument"))
        return self

    def auto_cleanup(self, enabled: bool) -> Self:
        if not isinstance(enabled, bool):
            raise TypeError(f"auto_cleanup must be a bool, got {enabled!r}")
        self._auto_cleanup = enabled
        return self

    def shutdown_grace_period(self, period: float | timedelta) -> Self:
        self._grace = seconds(period, "shutdown_grace_period")
        return self

    def cancel_timeout(self, period: float | timedelta) -> Self:
        """How long to wait for a force-cancelled child before abandoning it (default 5 s)."""
        self._cancel_timeout = seconds(period, "cancel_timeout")
        return self

    def observer(self, observer: Observer) -> Self:
        """Attach an observer to the manager and its whole subtree (repeatable)."""
        Fanout((observer,))  # type check at the call
        if self._observers is None:
            self._observers = []
        self._observers.append(observer)
        return self

    def no_observers(self) -> Self:
        """Attach no observer at all (not even the default logging one)."""
        self._observers = []
        return self

    def build(self) -> ProcessManager:
        manager = ProcessManager(
            self._name,
            auto_cleanup=self._auto_cleanup,
            shutdown_grace_period=self._grace,
            cancel_timeout=self._cancel_timeout,
            observers=self._observers,
        )
        for child in self._children:
            manager.insert(child)
        return manager
