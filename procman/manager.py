"""ProcessManager: supervises a set of child processes as one unit.

Guarantees (each is tested):

* ``process_start`` returns ``None`` when every child ended without error and
  re-raises the *first* child exception (the same object, with a note naming
  the child's path) after shutting the other children down gracefully.
* A graceful shutdown asks every child to stop, waits for them, cancels the
  ones still running after ``shutdown_grace_period`` (or a child's own
  shorter ``shutdown_timeout``) and stops waiting for a child that ignores
  cancellation ``cancel_timeout`` seconds later (it is reported as
  abandoned). Nothing waits forever.
* Errors beat cancellation: cancelled from outside after a child failed, the
  manager raises that failure rather than :class:`asyncio.CancelledError`.
* Supervision policies (restart types, strategies, intensity, readiness,
  ordered start and stop, significant children) are described in
  :mod:`procman.policy` and the README; with none set, the first failure
  shuts the tree down and is raised (the seed crate's rule).
* Bookkeeping is O(1) per child event; the shutdown is driven by task
  completion with one timer for the whole grace period.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Coroutine, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from procman._validate import check_bool, check_count, check_name, check_runnable, seconds
from procman.child import (
    CURRENT_SUPERVISOR,
    ChildRecord,
    Owner,
    current_child,
    run_observed,
    start_of,
)
from procman.errors import ManagerStateError, RestartIntensityExceeded
from procman.events import (
    ProcessAbandoned,
    ProcessReady,
    ProcessRestarted,
    ProcessStarting,
    ProcessStopTimedOut,
    ReloadCompleted,
    ReloadRequested,
    RestartCompleted,
    RestartRequested,
    RestartScheduled,
    ShutdownCompleted,
    ShutdownRequested,
)
from procman.handle import ManagerHandle
from procman.observer import EMPTY, Fanout, Observer
from procman.policy import DEFAULT_READY_TIMEOUT, ChildSpec, Restart, RestartBackoff, Strategy
from procman.runnable import Runnable, RuntimeControlMessage
from procman.snapshot import ChildSnapshot, ChildState, ManagerPhase, SupervisorSnapshot

if TYPE_CHECKING:
    from typing import Self

__all__ = ["ManagerHandle", "ProcessManager"]

_log = logging.getLogger("procman")

_SHUTDOWN = RuntimeControlMessage.SHUTDOWN
_RELOAD = RuntimeControlMessage.RELOAD
_NOTE_PREFIX = "procman: raised by process "
DEFAULT_GRACE_PERIOD = 30.0
DEFAULT_CANCEL_TIMEOUT = 5.0
DEFAULT_WITHIN = 60.0
_LIVE_STATES = frozenset(
    (ChildState.STARTING, ChildState.RUNNING, ChildState.STOPPING, ChildState.BACKOFF)
)


def _default_observers() -> tuple[Observer, ...]:
    from procman.observe.logging import LoggingObserver

    return (LoggingObserver(),)


async def _await(awaitable: Awaitable[None]) -> None:
    await awaitable


async def _raise(exc: BaseException) -> None:
    raise exc


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


def _cancel_timer(timer: asyncio.TimerHandle | None) -> None:
    if timer is not None:
        timer.cancel()


class _Cascade:
    """One ONE_FOR_ALL / REST_FOR_ONE restart in progress."""

    __slots__ = ("current", "exc", "members", "t0", "timer", "to_stop", "trigger")

    def __init__(
        self, trigger: ChildRecord, exc: BaseException | None, members: list[ChildRecord]
    ) -> None:
        self.trigger = trigger
        self.exc = exc
        self.members = members  # start order
        self.to_stop = [m for m in reversed(members) if m is not trigger]
        self.current: ChildRecord | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.t0 = time.monotonic()


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
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 0,
        within: float | timedelta = DEFAULT_WITHIN,
        backoff: RestartBackoff | None = None,
        ordered: bool = False,
    ) -> None:
        self._name = check_name(name)
        self._auto_cleanup = check_bool(auto_cleanup, "auto_cleanup")
        self._grace = seconds(shutdown_grace_period, "shutdown_grace_period")
        self._cancel_timeout = seconds(cancel_timeout, "cancel_timeout")
        self._own_observers: tuple[Observer, ...] | None = None
        if observers is not None:
            self._own_observers = Fanout(observers).observers
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategy must be a procman.Strategy, got {strategy!r}")
        self._strategy = strategy
        self._max_restarts = check_count(max_restarts, "max_restarts")
        self._within = seconds(within, "within", allow_zero=False)
        if backoff is not None and not isinstance(backoff, RestartBackoff):
            raise TypeError(f"backoff must be a RestartBackoff, got {type(backoff).__name__}")
        self._backoff = backoff if backoff is not None else RestartBackoff()
        self._ordered = check_bool(ordered, "ordered")
        self._inserted: list[tuple[Runnable, str, ChildSpec]] = []
        self._phase = ManagerPhase.CREATED
        self._shutdown_pending = False
        self._path = self._name
        self._fanout: Fanout = EMPTY
        self._parent: Owner | None = None
        self._parent_record: ChildRecord | None = None
        self._done_callback = self._child_done
        self._live: dict[asyncio.Task[None], ChildRecord] = {}
        self._waiting: dict[ChildRecord, None] = {}  # in backoff / waiting for a group restart
        self._pending: deque[ChildRecord] = deque()  # an ordered start's queue
        self._starting: ChildRecord | None = None  # the child an ordered start waits for
        self._stop_order: list[ChildRecord] | None = None
        self._stopping: ChildRecord | None = None
        self._cascade: _Cascade | None = None
        self._decisions: deque[tuple[ChildRecord, BaseException | None]] = deque()
        self._restart_times: deque[float] = deque()
        self._unready = 0
        self._signalled = False
        self._seq = 0
        self._finished: list[ChildRecord] = []
        self._first_error: BaseException | None = None
        self._context: contextvars.Context | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ended: asyncio.Future[None] | None = None
        self._stopped_waiters: list[asyncio.Future[None]] = []
        self._started_waiters: list[asyncio.Future[None]] = []
        self._ready_waiters: list[asyncio.Future[None]] = []
        self._control_tasks: set[asyncio.Task[None]] = set()
        self._grace_timer: asyncio.TimerHandle | None = None
        self._grace_deadline = 0.0
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
    def abandon_deadline(self) -> float | None:
        """Loop time after which a cancelled subtree stops waiting for stubborn children."""
        return self._abandon_deadline

    @property
    def phase(self) -> ManagerPhase:
        return self._phase

    @property
    def shutdown_grace_period(self) -> float:
        return self._grace

    @property
    def strategy(self) -> Strategy:
        return self._strategy

    def process_name(self) -> str:
        return self._name

    def process_handle(self) -> ManagerHandle:
        return self._handle

    def shutdown_requested(self) -> bool:
        """True once a shutdown has begun (or was asked for before start)."""
        return self._shutdown_pending or self._phase is ManagerPhase.STOPPING

    @staticmethod
    def check_child(runnable: Runnable, options: dict[str, Any]) -> tuple[str, ChildSpec]:
        """The name and spec of a child; raises naming the bad argument."""
        name = check_name(runnable.process_name(), f"{type(runnable).__name__}.process_name()")
        return name, ChildSpec.of(**options)

    def _child_entry(
        self,
        runnable: Runnable,
        restart: Restart,
        wait_ready: bool,
        ready_timeout: float | timedelta,
        shutdown_timeout: float | timedelta | None,
        significant: bool,
    ) -> tuple[Runnable, str, ChildSpec]:
        check_runnable(runnable)
        name = runnable.process_name()
        if type(name) is not str or not name.isascii() or not name:
            name = check_name(name, f"{type(runnable).__name__}.process_name()")
        spec = ChildSpec.of(
            restart=restart,
            wait_ready=wait_ready,
            ready_timeout=ready_timeout,
            shutdown_timeout=shutdown_timeout,
            significant=significant,
        )
        return runnable, name, spec

    def insert(
        self,
        runnable: Runnable,
        *,
        restart: Restart = Restart.TRANSIENT,
        wait_ready: bool = False,
        ready_timeout: float | timedelta = DEFAULT_READY_TIMEOUT,
        shutdown_timeout: float | timedelta | None = None,
        significant: bool = False,
    ) -> Self:
        """Register a child before the manager starts (returns the manager).

        Options (keyword-only, the same on :meth:`add` and the builder's
        ``pre_insert``): ``restart`` (:class:`Restart`, default TRANSIENT),
        ``wait_ready`` (the child counts as starting until it calls
        ``ready()``), ``ready_timeout`` (seconds, default 60),
        ``shutdown_timeout`` (this child's grace period; default the
        manager's), ``significant`` (its clean return ends the tree).
        """
        entry = self._child_entry(
            runnable, restart, wait_ready, ready_timeout, shutdown_timeout, significant
        )
        if self._phase is ManagerPhase.RUNNING or self._phase is ManagerPhase.STOPPING:
            raise ManagerStateError(
                f"manager {self._path!r} is already running: use add() to add a child "
                "to a running manager"
            )
        self._inserted.append(entry)
        return self

    def add(
        self,
        runnable: Runnable,
        *,
        restart: Restart = Restart.TRANSIENT,
        wait_ready: bool = False,
        ready_timeout: float | timedelta = DEFAULT_READY_TIMEOUT,
        shutdown_timeout: float | timedelta | None = None,
        significant: bool = False,
    ) -> None:
        """Start a new child in this running manager at once (options as :meth:`insert`).

        In an ordered manager the child joins the end of the start order.
        Raises :class:`ManagerStateError` before start (use :meth:`insert`),
        during a shutdown and after the manager ended.
        """
        entry = self._child_entry(
            runnable, restart, wait_ready, ready_timeout, shutdown_timeout, significant
        )
        phase = self._phase
        if phase is ManagerPhase.RUNNING:
            rec = self._new_record(*entry)
            if self._ordered and (self._pending or self._starting is not None):
                self._pending.append(rec)
            else:
                self._first_run(rec)
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
        """Run every child until all have ended; re-raise the first failure.

        Cancellation contract: cancelled from outside, the manager skips the
        grace period and cancels its children at once; cancelled a second
        time it stops waiting and reports the children still running as
        abandoned. A child failure beats the cancellation (it is raised
        instead of :class:`asyncio.CancelledError`).
        """
        if self._phase is ManagerPhase.RUNNING or self._phase is ManagerPhase.STOPPING:
            raise ManagerStateError(f"manager {self._path!r} is already running")
        parent = self._parent = CURRENT_SUPERVISOR.get()
        self._parent_record = current_child() if parent is not None else None
        self._live = {}
        self._waiting = {}
        self._pending.clear()
        self._starting = self._stopping = self._stop_order = self._cascade = None
        self._decisions.clear()
        self._restart_times.clear()
        self._unready = 0
        self._signalled = False
        self._finished = []
        self._first_error = None
        self._shutdown_started = None
        self._forced = 0
        self._setup_scope(parent)
        if self._shutdown_pending:
            self._shutdown_pending = False
            self._phase = ManagerPhase.STOPPED
            _wake_all(self._started_waiters)
            return
        loop = self._loop = asyncio.get_running_loop()
        self._phase = ManagerPhase.RUNNING
        token = CURRENT_SUPERVISOR.set(self)
        self._context = contextvars.copy_context()
        CURRENT_SUPERVISOR.reset(token)
        cancelled = False
        try:
            if parent is None and self._fanout.observers:
                self._fanout.tree_started(self)
            self._start_children()
            _wake_all(self._started_waiters)
            self._check_ready()
            while self._busy():
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

    def _busy(self) -> bool:
        return bool(self._live or self._waiting or self._pending)

    def _start_children(self) -> None:
        if self._ordered:
            self._pending.extend(self._new_record(*entry) for entry in self._inserted)
            self._start_next()
        else:
            for entry in self._inserted:
                self._first_run(self._new_record(*entry))

    def _new_record(self, runnable: Runnable, name: str, spec: ChildSpec) -> ChildRecord:
        self._seq += 1
        return ChildRecord(self, runnable, name, spec, self._seq)

    def _first_run(self, rec: ChildRecord) -> None:
        fan = self._fanout
        if fan.observers and fan.wants(ProcessStarting):
            fan.emit(ProcessStarting(supervisor=self._path, child=rec.name, time=time.monotonic()))
        self._run(rec)

    def _run(self, rec: ChildRecord) -> None:
        """Start one run of ``rec`` as a task of this manager."""
        runnable = rec.runnable
        spec = rec.spec
        fan = self._fanout
        context = self._context
        loop = self._loop
        assert loop is not None and context is not None
        wait_ready = spec.wait_ready or isinstance(runnable, ProcessManager)
        if wait_ready:
            rec.ready = False
            rec.run_start = time.monotonic()
            self._unready += 1
            if spec.wait_ready:
                rec.ready_timer = loop.call_later(spec.ready_timeout, self._ready_expired, rec)
        coro: Coroutine[Any, Any, None] | None = None
        if (fan.observers or spec.wait_ready) and not getattr(
            type(runnable), "procman_reports_runs", False
        ):
            coro = run_observed(rec, runnable.process_start)
        if coro is None:
            # The child's own coroutine is the task (no wrapper frame): a runnable that
            # reports its own runs, or no observer at all. snapshot() tells STARTING
            # from RUNNING by the coroutine's state.
            try:
                start = runnable.process_start()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # a plain def that raised: the run fails
                start = _raise(exc)
            if asyncio.iscoroutine(start):
                coro = start
            elif inspect.isawaitable(start):
                coro = _await(start)
            else:
                coro = start_of(runnable)  # fails with a clear TypeError inside the task
        task = loop.create_task(coro, context=context.copy())
        rec.task = task
        self._live[task] = rec
        task.add_done_callback(self._done_callback, context=context)

    def record_of(self, task: asyncio.Task[Any]) -> ChildRecord | None:
        """The record of a running child task of this manager (O(1))."""
        return self._live.get(task)

    # -- readiness ---------------------------------------------------------------
    def mark_ready(self, rec: ChildRecord) -> None:
        """A child's current run signalled readiness (``ctx.ready()`` / ``guard.ready()``)."""
        if rec.ready or rec.task is None or self._live.get(rec.task) is not rec:
            return
        rec.ready = True
        self._unready -= 1
        if rec.state is ChildState.STARTING:
            rec.state = ChildState.RUNNING
        _cancel_timer(rec.ready_timer)
        rec.ready_timer = None
        fan = self._fanout
        if fan.observers and fan.wants(ProcessReady):
            now = time.monotonic()
            fan.emit(
                ProcessReady(
                    supervisor=self._path,
                    child=rec.name,
                    time=now,
                    restart_count=rec.restart_count,
                    duration=now - rec.run_start,
                )
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
            _wake_all(self._ready_waiters)

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
        """Ordered start: run queued children until one must become ready first."""
        pending = self._pending
        while self._starting is None and pending and self._phase is ManagerPhase.RUNNING:
            rec = pending.popleft()
            if rec.task is None:
                self._first_run(rec)
            else:
                self._rerun(rec)
            if rec.spec.wait_ready and not rec.ready and self._live.get(rec.task) is rec:  # type: ignore[arg-type]
                self._starting = rec

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
        if not rec.ready:
            rec.ready = True
            self._unready -= 1
            _cancel_timer(rec.ready_timer)
            rec.ready_timer = None
        if rec.timer is not None:
            rec.timer.cancel()
            rec.timer = None
        if self._phase is not ManagerPhase.RUNNING:
            self._ended_in_shutdown(rec, exc)
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

    def _retire(self, rec: ChildRecord) -> None:
        if not self._auto_cleanup:
            self._finished.append(rec)

    def _ended_in_shutdown(self, rec: ChildRecord, exc: BaseException | None) -> None:
        self._retire(rec)
        if exc is not None:
            self._child_failed(rec, exc)
        if rec is self._stopping:
            self._stopping = None
            self._stop_next()

    def _child_failed(self, rec: ChildRecord, exc: BaseException) -> None:
        self._fail(exc, f"{self._path}/{rec.name}")

    def _fail(self, exc: BaseException, origin: str) -> None:
        _note_origin(exc, origin)
        if self._first_error is None:
            self._first_error = exc
        self._begin_shutdown("failure", exc)

    # -- restarts ------------------------------------------------------------------
    def _needs_restart(self, rec: ChildRecord, exc: BaseException | None) -> None:
        """``rec`` ended and its restart type asks for a restart: apply the policy."""
        if self._cascade is not None:  # decided once the group restart in progress is done
            rec.state = ChildState.BACKOFF
            self._waiting[rec] = None
            self._decisions.append((rec, exc))
            return
        max_restarts = self._max_restarts
        if max_restarts == 0 and exc is not None:  # the seed's rule
            self._retire(rec)
            self._child_failed(rec, exc)
            return
        now = time.monotonic()
        times = self._restart_times
        times.append(now)
        while times and times[0] <= now - self._within:
            times.popleft()
        if len(times) > max_restarts:
            self._retire(rec)
            error = RestartIntensityExceeded(rec.name, max_restarts, self._within)
            error.__cause__ = exc
            self._fail(error, f"{self._path}/{rec.name}")
            return
        if times.maxlen is None or len(times) > max_restarts + 1:  # bounded memory
            self._restart_times = deque(times, maxlen=max_restarts + 1)
        strategy = self._strategy
        members = [rec] if strategy is Strategy.ONE_FOR_ONE else self._group_of(rec)
        self._emit_restart_requested(rec, exc, members)
        if len(members) == 1:
            self._schedule_restart(rec, exc, time.monotonic())
        else:
            for m in members:
                m.cascade = True
            self._cascade = _Cascade(rec, exc, members)
            rec.state = ChildState.BACKOFF
            self._waiting[rec] = None
            self._cascade_stop_next()

    def _group_of(self, rec: ChildRecord) -> list[ChildRecord]:
        """The children a group restart triggered by ``rec`` stops, in start order."""
        rest = self._strategy is Strategy.REST_FOR_ONE
        members = {rec}
        for other in (*self._live.values(), *self._waiting):
            if not rest or other.seq > rec.seq:
                members.add(other)
        return sorted(members, key=lambda r: r.seq)

    def _emit_restart_requested(
        self, rec: ChildRecord, exc: BaseException | None, members: list[ChildRecord]
    ) -> None:
        fan = self._fanout
        if fan.observers and fan.wants(RestartRequested):
            fan.emit(
                RestartRequested(
                    supervisor=self._path,
                    time=time.monotonic(),
                    strategy=self._strategy.value,
                    trigger=rec.name,
                    children=tuple(
                        m.name for m in members if m.spec.restart is not Restart.TEMPORARY
                    ),
                    exception=exc,
                )
            )

    def _delay_for(self, rec: ChildRecord) -> float:
        backoff = self._backoff
        if time.time() - rec.started_at >= backoff.reset_threshold:
            rec.exponent = 0
        rec.exponent += 1
        return backoff.delay(rec.exponent)

    def _emit_scheduled(self, rec: ChildRecord, delay: float, exc: BaseException | None) -> None:
        fan = self._fanout
        if fan.observers and fan.wants(RestartScheduled):
            fan.emit(
                RestartScheduled(
                    supervisor=self._path,
                    child=rec.name,
                    time=time.monotonic(),
                    attempt=rec.restart_count + 1,
                    delay=delay,
                    exception=exc,
                    strategy=self._strategy.value,
                )
            )

    def _schedule_restart(self, rec: ChildRecord, exc: BaseException | None, t0: float) -> None:
        delay = self._delay_for(rec)
        rec.state = ChildState.BACKOFF
        self._waiting[rec] = None
        self._emit_scheduled(rec, delay, exc)
        assert self._loop is not None
        rec.timer = self._loop.call_later(delay, self._restart_one, rec, t0)

    def _restart_one(self, rec: ChildRecord, t0: float) -> None:
        rec.timer = None
        if self._phase is not ManagerPhase.RUNNING or rec not in self._waiting:
            return
        del self._waiting[rec]
        self._rerun(rec)
        self._emit_restart_completed(rec, t0)

    def _emit_restart_completed(self, trigger: ChildRecord, t0: float) -> None:
        fan = self._fanout
        if fan.observers and fan.wants(RestartCompleted):
            now = time.monotonic()
            fan.emit(
                RestartCompleted(
                    supervisor=self._path,
                    time=now,
                    strategy=self._strategy.value,
                    trigger=trigger.name,
                    duration=now - t0,
                    start_time=t0,
                )
            )

    def _rerun(self, rec: ChildRecord) -> None:
        """Start the next run of a restarted child (it keeps its place in the start order)."""
        rec.restart_count += 1
        rec.started_at = time.time()
        rec.force_cancelled = False
        rec.state = ChildState.STARTING
        fan = self._fanout
        if fan.observers and fan.wants(ProcessRestarted):
            fan.emit(
                ProcessRestarted(
                    supervisor=self._path,
                    child=rec.name,
                    time=time.monotonic(),
                    attempt=rec.restart_count,
                )
            )
        self._run(rec)

    def _cascade_stop_next(self) -> None:
        """Group restart: stop the next member (reverse start order), one at a time."""
        cascade = self._cascade
        assert cascade is not None and self._loop is not None
        while cascade.to_stop:
            rec = cascade.to_stop.pop(0)
            task = rec.task
            if task is None or self._live.get(task) is not rec:
                continue  # not running (in backoff, say): nothing to stop
            cascade.current = rec
            rec.state = ChildState.STOPPING
            timeout = rec.spec.shutdown_timeout
            rec.timer = self._loop.call_later(
                self._grace if timeout is None else timeout, self._force_cancel, rec
            )
            self._send(rec, _SHUTDOWN)
            return
        # every other member has ended: wait the trigger's backoff, then restart the group
        trigger = cascade.trigger
        delay = self._delay_for(trigger)
        for rec in cascade.members:
            if rec.spec.restart is not Restart.TEMPORARY:
                self._emit_scheduled(rec, delay, cascade.exc if rec is trigger else None)
        cascade.timer = self._loop.call_later(delay, self._cascade_restart)

    def _cascade_member_ended(self, rec: ChildRecord) -> None:
        cascade = self._cascade
        assert cascade is not None
        if rec is self._starting:
            self._starting = None
        if rec.spec.restart is Restart.TEMPORARY:
            rec.cascade = False
            self._retire(rec)
        else:
            rec.state = ChildState.BACKOFF
            self._waiting[rec] = None
        if cascade.current is rec:
            cascade.current = None
            self._cascade_stop_next()

    def _cascade_restart(self) -> None:
        cascade = self._cascade
        if cascade is None or self._phase is not ManagerPhase.RUNNING:
            return
        self._cascade = None
        again = [m for m in cascade.members if m.spec.restart is not Restart.TEMPORARY]
        for rec in again:
            rec.cascade = False
            self._waiting.pop(rec, None)
        if self._ordered:
            self._pending.extendleft(reversed(again))
            self._start_next()
        else:
            for rec in again:
                self._rerun(rec)
        self._emit_restart_completed(cascade.trigger, cascade.t0)
        while self._decisions and self._cascade is None and self._phase is ManagerPhase.RUNNING:
            rec, exc = self._decisions.popleft()
            if self._waiting.pop(rec, 0) is None:
                self._needs_restart(rec, exc)

    # -- shutdown ----------------------------------------------------------------
    def _all_ended(self) -> None:
        for timer in (self._grace_timer, self._abandon_timer):
            if timer is not None:
                timer.cancel()
        self._grace_timer = self._abandon_timer = None
        started = self._shutdown_started
        self._shutdown_started = None  # reported once
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
        self._drop_queued()
        self._abandon_deadline = None
        self._ended = None
        _wake_all(self._started_waiters)
        _wake_all(self._ready_waiters)
        _wake_all(self._stopped_waiters)

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
            _cancel_timer(cascade.timer)
            self._cascade = None
        for rec in self._waiting:
            _cancel_timer(rec.timer)
            rec.timer = None
            rec.cascade = False
            rec.state = ChildState.STOPPED
            self._retire(rec)
        self._waiting.clear()
        self._pending.clear()
        self._decisions.clear()
        self._starting = None

    def _begin_shutdown(self, reason: str, exc: BaseException | None) -> None:
        if self._phase is not ManagerPhase.RUNNING:
            return
        self._phase = ManagerPhase.STOPPING
        now = self._shutdown_started = time.monotonic()
        self._drop_queued()
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
                _cancel_timer(rec.timer)
                rec.timer = loop.call_later(timeout, self._force_cancel, rec)
            self._send(rec, _SHUTDOWN)

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
            _cancel_timer(rec.timer)
            rec.timer = loop.call_later(
                left if timeout is None else min(timeout, left), self._force_cancel, rec
            )
            self._send(rec, _SHUTDOWN)
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
            result = handle.shutdown() if message is _SHUTDOWN else handle.reload()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:
            _log.exception(
                "procman: delivering %s to %s/%s failed", message.value, self._path, rec.name
            )
            return None
        if not inspect.isawaitable(result):
            return None
        assert self._loop is not None
        coro = result if asyncio.iscoroutine(result) else _await(result)
        task = self._loop.create_task(coro)
        self._control_tasks.add(task)
        task.add_done_callback(self._control_done)
        return task

    def _control_done(self, task: asyncio.Task[None]) -> None:
        self._control_tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            _log.error("procman: a control handler of %s raised", self._path, exc_info=exc)

    def _force_cancel(self, rec: ChildRecord) -> None:
        """A child's own shutdown timeout expired: cancel it."""
        rec.timer = None
        task = rec.task
        if task is None or task.done() or self._live.get(task) is not rec:
            return
        timeout = rec.spec.shutdown_timeout
        self._cancel_child(rec, self._grace if timeout is None else timeout, time.monotonic())
        if self._phase is ManagerPhase.STOPPING:
            self._arm_abandon()

    def _cancel_child(self, rec: ChildRecord, period: float, now: float) -> None:
        rec.force_cancelled = True
        fan = self._fanout
        if fan.observers and fan.wants(ProcessStopTimedOut):
            fan.emit(
                ProcessStopTimedOut(
                    supervisor=self._path, child=rec.name, time=now, grace_period=period
                )
            )
        assert rec.task is not None
        rec.task.cancel()
        self._forced += 1

    def _grace_expired(self) -> None:
        self._grace_timer = None
        now = time.monotonic()
        for rec in list(self._live.values()):
            if not rec.force_cancelled:
                self._cancel_child(rec, self._grace, now)
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
        parent = self._parent
        parent_deadline = parent.abandon_deadline if parent is not None else None
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
            nested = rec.runnable
            if isinstance(nested, ProcessManager) and not nested._busy():
                continue  # a subtree that has wound down ends on its next step: not stubborn
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
        shutdown asked for before start). It waits neither for readiness nor
        for later children of an ordered start (see :meth:`wait_ready`).
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

    def runs_current_task(self) -> bool:
        """Whether the current task runs inside this manager's subtree."""
        owner: Owner | None = CURRENT_SUPERVISOR.get()
        while owner is not None:
            if owner is self:
                return True
            owner = owner.parent
        return False

    # -- reload ------------------------------------------------------------------
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
        records = [*self._finished, *self._live.values(), *self._waiting, *self._pending]
        children = tuple(self._child_snapshot(rec) for rec in records)
        return SupervisorSnapshot(
            path=self._path, name=self._name, phase=self._phase, children=children
        )

    @staticmethod
    def _child_snapshot(rec: ChildRecord) -> ChildSnapshot:
        runnable = rec.runnable
        state = rec.state
        if (
            state is ChildState.STARTING
            and rec.ready
            and rec.task is not None
            and _has_begun(rec.task)
        ):
            state = ChildState.RUNNING
        nested = runnable if isinstance(runnable, ProcessManager) else None
        if nested is None:
            expose = getattr(runnable, "procman_nested_manager", None)  # lowlevel.ExposesManager
            if expose is not None:
                try:
                    inner = expose()
                except Exception:  # a user hook must not break snapshots
                    _log.exception("procman: %r.procman_nested_manager() raised", runnable)
                    inner = None
                if isinstance(inner, ProcessManager):
                    nested = inner
        sub = nested.snapshot() if nested is not None else None
        if state not in _LIVE_STATES:
            ready = True  # ended children do not make a tree unready
        elif sub is not None:
            ready = sub.ready
        else:
            ready = (
                rec.ready and state is not ChildState.STARTING and state is not ChildState.BACKOFF
            )
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
