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
import time
from collections import deque
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

from procman._readiness import ReadinessMixin
from procman._restarts import RestartMixin
from procman._runs import RunsMixin
from procman._shutdown import ShutdownMixin
from procman._snapshots import SnapshotMixin
from procman._state import wake_all
from procman._validate import check_bool, check_count, check_name, seconds
from procman.child import (
    CURRENT_SUPERVISOR,
    ChildRecord,
    Owner,
    current_child,
)
from procman.errors import ManagerStateError
from procman.events import ProcessStarting
from procman.handle import ManagerHandle
from procman.observer import EMPTY, Fanout, Observer
from procman.policy import (
    DEFAULT_READY_TIMEOUT,
    ChildSpec,
    Restart,
    RestartBackoff,
    Strategy,
    child_entry,
)
from procman.runnable import Runnable
from procman.snapshot import ManagerPhase

if TYPE_CHECKING:
    from typing import Self

__all__ = ["ManagerHandle", "ProcessManager"]


DEFAULT_GRACE_PERIOD = 30.0
DEFAULT_CANCEL_TIMEOUT = 5.0
DEFAULT_WITHIN = 60.0


def _default_observers() -> tuple[Observer, ...]:
    from procman.observe.logging import LoggingObserver

    return (LoggingObserver(),)


class ProcessManager(
    RestartMixin, ShutdownMixin, ReadinessMixin, SnapshotMixin, RunsMixin, Runnable
):
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
        self._inserted: list[Runnable] = []  # with their names and specs, index by index
        self._inserted_names: list[str] = []
        self._inserted_specs: list[ChildSpec] = []
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
        self._spawning: ChildRecord | None = None
        self._stop_order: list[ChildRecord] | None = None
        self._stopping: ChildRecord | None = None
        self._cascade = None
        self._decisions: deque[tuple[ChildRecord, BaseException | None]] = deque()
        self._restart_times: deque[float] = deque()
        self._restart_t0: dict[ChildRecord, float] = {}
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
        self._doomed: dict[ChildRecord, float] = {}  # cancelled child -> when it is abandoned
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
        """Seconds a shutdown waits before cancelling children (settable until start)."""
        return self._grace

    @shutdown_grace_period.setter
    def shutdown_grace_period(self, period: float | timedelta) -> None:
        value = seconds(period, "shutdown_grace_period")
        self._refuse_while_running("shutdown_grace_period")
        self._grace = value

    @property
    def observers(self) -> tuple[Observer, ...] | None:
        """The observers set on this manager; None means the default (a ``LoggingObserver``
        for a root, only the inherited ones for a nested manager)."""
        return self._own_observers

    def set_observers(self, observers: Iterable[Observer] | None) -> None:
        """Replace this manager's own observers (None: the default); refused while running.

        For launchers that add their observers to a tree built elsewhere.
        """
        own = None if observers is None else Fanout(observers).observers
        self._refuse_while_running("set_observers()")
        self._own_observers = own

    def _refuse_while_running(self, what: str) -> None:
        if self._phase is ManagerPhase.RUNNING or self._phase is ManagerPhase.STOPPING:
            raise ManagerStateError(
                f"manager {self._path!r} is running: {what} takes effect only before start"
            )

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
        name, spec = child_entry(
            runnable, restart, wait_ready, ready_timeout, shutdown_timeout, significant
        )
        if self._phase is ManagerPhase.RUNNING or self._phase is ManagerPhase.STOPPING:
            raise ManagerStateError(
                f"manager {self._path!r} is already running: use add() to add a child "
                "to a running manager"
            )
        # three flat lists, not a tuple per child: one object fewer for the GC to track
        self._inserted.append(runnable)
        self._inserted_names.append(name)
        self._inserted_specs.append(spec)
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
        name, spec = child_entry(
            runnable, restart, wait_ready, ready_timeout, shutdown_timeout, significant
        )
        phase = self._phase
        if phase is ManagerPhase.RUNNING:
            rec = self._new_record(runnable, name, spec)
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
        self._restart_t0.clear()
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
            wake_all(self._started_waiters)
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
            wake_all(self._started_waiters)
            self._check_ready()
            while self._busy():
                ended = self._ended = loop.create_future()
                try:
                    await ended
                except asyncio.CancelledError:
                    if cancelled:  # cancelled twice: stop waiting, report who is left
                        self._abandon_all()
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

    def _start_children(self) -> None:
        if self._ordered:
            self._pending.extend(
                map(self._new_record, self._inserted, self._inserted_names, self._inserted_specs)
            )
            self._start_next()
            return
        # One batch: what the observers want is asked once, not once per child.
        now = time.monotonic()
        fan = self._fanout
        announce = fan.wants(ProcessStarting)
        mode = self._run_mode()
        new_record, run = self._new_record, self._run
        entries = (self._inserted, self._inserted_names, self._inserted_specs)
        for runnable, name, spec in zip(*entries, strict=True):
            rec = new_record(runnable, name, spec, now)
            if announce:
                self._announce(rec)
            run(rec, mode)

    def _new_record(
        self, runnable: Runnable, name: str, spec: ChildSpec, now: float | None = None
    ) -> ChildRecord:
        seq = 0
        if self._ordered or self._strategy is not Strategy.ONE_FOR_ONE:
            seq = self._seq = self._seq + 1  # start order, only when a policy needs it
        return ChildRecord(self, runnable, name, spec, seq, now)

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

    def _finish(self) -> None:
        self._phase = ManagerPhase.STOPPED
        for timer in (self._grace_timer, self._abandon_timer):
            if timer is not None:
                timer.cancel()
        self._grace_timer = self._abandon_timer = None
        self._drop_queued()
        self._doomed.clear()
        self._ended = None
        wake_all(self._started_waiters)
        wake_all(self._ready_waiters)
        wake_all(self._stopped_waiters)

    # -- introspection -------------------------------------------------------------
    def __len__(self) -> int:
        """Number of children that have not ended yet."""
        return len(self._live)

    def __repr__(self) -> str:
        return f"<ProcessManager {self._path!r} {self._phase.value} children={len(self._live)}>"
