"""Per-child bookkeeping and the observed run of one child (internal).

The public face of this module is :mod:`procman.lowlevel`. :class:`ChildRecord`
is what a manager keeps for each child. The manager whose children run in
the current context is in ``CURRENT_SUPERVISOR`` (set once per manager, not
per child: a per-child context variable write would double the cost of
spawning; only managers set it, everyone else reads it through
:func:`current_supervisor`). :func:`current_child` finds the record of the
child whose task is running, which is how nested managers find their parent
and how wrappers such as :class:`procman.builtin.RestartSupervisor` report
their runs.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import types
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from procman.errors import ReadyTimeoutError
from procman.events import (
    ProcessCancelled,
    ProcessFailed,
    ProcessStarted,
    ProcessStopped,
)
from procman.observer import EMPTY, Fanout
from procman.policy import DEFAULT_SPEC, ChildSpec
from procman.snapshot import ChildState

if TYPE_CHECKING:
    from procman.runnable import Runnable

__all__ = [
    "CURRENT_SUPERVISOR",
    "ChildRecord",
    "Owner",
    "current_child",
    "current_supervisor",
    "emit_end",
    "run_observed",
    "signal_ready",
    "start_of",
]

_COROUTINE = types.CoroutineType
"""What ``async def`` returns: checked by type first (``inspect.isawaitable`` is a Python call)."""


class Owner(Protocol):
    """What a child record needs of its supervisor."""

    @property
    def path(self) -> str: ...

    @property
    def fanout(self) -> Fanout: ...

    @property
    def parent(self) -> Owner | None:
        """The supervisor this one runs under (None for a root)."""

    def abandon_deadline_of(self, rec: ChildRecord) -> float | None:
        """Loop time after which this supervisor stops waiting for ``rec`` (None: not cancelled)."""

    def shutdown_requested(self) -> bool: ...

    def record_of(self, task: asyncio.Task[Any]) -> ChildRecord | None: ...

    def mark_ready(self, rec: ChildRecord) -> None: ...


class ChildRecord:
    """Mutable bookkeeping of one child (O(1) to create, update and drop)."""

    __slots__ = (
        "abandoned",
        "cascade",
        "exponent",
        "force_cancelled",
        "name",
        "owner",
        "ready",
        "ready_timed_out",
        "ready_timer",
        "reports_end",
        "restart_count",
        "run_start",
        "runnable",
        "seq",
        "spec",
        "state",
        "task",
        "timer",
    )

    def __init__(
        self,
        owner: Owner,
        runnable: Runnable,
        name: str,
        spec: ChildSpec = DEFAULT_SPEC,
        seq: int = 0,
        run_start: float | None = None,
    ) -> None:
        self.owner = owner
        self.runnable = runnable
        self.name = name
        self.spec = spec
        self.seq = seq
        self.state = ChildState.STARTING
        # when the current run began (time.monotonic()); children started together
        # share one float object, so a big tree pays no float per child
        self.run_start = time.monotonic() if run_start is None else run_start
        self.restart_count = 0
        self.force_cancelled = False
        self.abandoned = False
        self.ready = True
        self.ready_timed_out = False
        self.ready_timer: asyncio.TimerHandle | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.exponent = 0
        self.cascade = False
        self.reports_end = False
        self.task: asyncio.Task[None] | None = None

    @property
    def started_at(self) -> float:
        """Wall-clock time (:func:`time.time`) the current run began."""
        return time.time() - (time.monotonic() - self.run_start)

    def __repr__(self) -> str:
        return f"<ChildRecord {self.owner.path}/{self.name} {self.state.value}>"


CURRENT_SUPERVISOR: ContextVar[Owner | None] = ContextVar("procman_supervisor", default=None)
"""The supervisor whose children run in this context (None outside supervision)."""


def current_supervisor() -> Owner | None:
    """The supervisor whose children run in the current context (None outside supervision)."""
    return CURRENT_SUPERVISOR.get()


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
    parent = None

    def abandon_deadline_of(self, rec: ChildRecord) -> float | None:
        return None

    def shutdown_requested(self) -> bool:
        return False

    def record_of(self, task: asyncio.Task[Any]) -> ChildRecord | None:
        return None

    def mark_ready(self, rec: ChildRecord) -> None:
        rec.ready = True


STANDALONE = _Standalone()


def _ready_timeout(rec: ChildRecord) -> ReadyTimeoutError:
    """The failure of a run cancelled because it did not signal readiness in time."""
    rec.ready_timed_out = False
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
    return ReadyTimeoutError(rec.name, rec.spec.ready_timeout)


async def run_observed(rec: ChildRecord, start: Callable[[], Awaitable[None]]) -> None:
    """Run ``start()`` as one run of ``rec``, emitting its start and terminal events.

    Emits :class:`ProcessStarted` before and exactly one terminal event after,
    both in the calling task, whatever the run ends with (``KeyboardInterrupt``
    and ``SystemExit`` included: they are reported, then propagate). A run
    cancelled because it missed its ``ready_timeout`` fails with
    :class:`procman.ReadyTimeoutError`. With no observer this only awaits
    ``start()``.
    """
    rec.state = ChildState.RUNNING if rec.ready else ChildState.STARTING
    fan = rec.owner.fanout
    observed = bool(fan.observers)
    t0 = 0.0
    if observed:
        t0 = time.monotonic()
        # No closure here (emit_new's builder): a variable a closure captures is
        # a cell object kept for the whole run, one more object per child to collect.
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
        # start() is called and awaited here, not in a helper coroutine: one frame
        # per run less. A plain def's result fails the run with a clear TypeError.
        result = start()
        if type(result) is not _COROUTINE and not inspect.isawaitable(result):
            await start_of(getattr(start, "__self__", start), result)
        del start  # a bound method: not kept alive for the whole run
        await result
    except asyncio.CancelledError:
        if rec.ready_timed_out:
            error = _ready_timeout(rec)
            if observed:
                emit_end(rec, fan, t0, error, cancelled=False)
            raise error from None
        if observed:
            emit_end(rec, fan, t0, None, cancelled=True)
        raise
    except BaseException as exc:
        if observed:
            emit_end(rec, fan, t0, exc, cancelled=False)
        raise
    if observed:
        emit_end(rec, fan, t0, None, cancelled=False)


def emit_end(
    rec: ChildRecord, fan: Fanout, t0: float, exc: BaseException | None, *, cancelled: bool
) -> None:
    """Emit the terminal event of the run of ``rec`` that began at ``t0`` (if wanted).

    ``cancelled``: the run ended by cancellation (``ProcessCancelled``); else
    ``exc`` is its failure (``ProcessFailed``) or None (``ProcessStopped``).
    Nothing for an abandoned child: ``ProcessAbandoned`` was its terminal event.
    """
    end = ProcessCancelled if cancelled else ProcessStopped if exc is None else ProcessFailed
    if rec.abandoned or not fan.wants(end):
        return  # per child on every shutdown: decided before anything is built
    now = time.monotonic()
    fields: dict[str, Any]
    if cancelled:
        forced = rec.force_cancelled
        fields = {"forced": forced, "requested": forced or rec.owner.shutdown_requested()}
    elif exc is not None:
        fields = {"exception": exc}
    else:
        fields = _NO_FIELDS
    fan.emit(
        end(
            supervisor=rec.owner.path,
            child=rec.name,
            time=now,
            restart_count=rec.restart_count,
            duration=now - t0,
            **fields,
        )
    )


_NO_FIELDS: dict[str, Any] = {}
"""The fields a ``ProcessStopped`` has beyond those of every terminal event."""


async def start_of(runnable: object, result: object) -> None:
    """Fail like an observed run whose ``process_start()`` returned ``result`` (not awaitable).

    ``process_start`` is not called again: each run calls it exactly once.
    """
    raise TypeError(
        f"{type(runnable).__name__}.process_start() must be an async def (a coroutine "
        f"function); it returned {type(result).__name__}"
    )
