"""The lifecycle event model: one immutable event per supervision transition.

Every event carries ``supervisor`` (the path of the manager in the tree,
``root/db``) and ``time`` (a :func:`time.monotonic` timestamp); events about
one child (:class:`ChildEvent`) also carry ``child`` (the child's name).
Monotonic timestamps are named ``time`` / ``start_time``; wall-clock times
(in snapshots) end in ``_at``. Each class has a stable dotted
:attr:`~LifecycleEvent.name` (``procman.child.failed``) that backends use as
their event name.

Where events are emitted (a guarantee observers may rely on):

* :class:`ProcessStarted` and the terminal events of a run
  (:class:`ProcessStopped`, :class:`ProcessFailed`, :class:`ProcessCancelled`)
  are emitted *inside the child's task* whenever an observer wants
  ``ProcessStarted``, so an observer can make context current for the run (an
  OpenTelemetry span, say) and restore it at the end. When no observer wants
  ``ProcessStarted`` (the logging backend at INFO or WARNING), the terminal
  event is emitted by the manager right after the task ended instead: the
  child then runs without a wrapper frame, as cheaply as with no observer.
* Every started run has exactly one terminal event.
* Events of one run are ordered: ``ProcessStarting`` (once per child) ->
  ``ProcessStarted`` -> terminal, and for restarted children
  ``RestartScheduled`` -> ``ProcessRestarted`` -> ``ProcessStarted`` -> terminal
  again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

__all__ = [
    "ChildEvent",
    "ExitOutcome",
    "LifecycleEvent",
    "ProcessAbandoned",
    "ProcessCancelled",
    "ProcessFailed",
    "ProcessReady",
    "ProcessRestarted",
    "ProcessStarted",
    "ProcessStarting",
    "ProcessStopTimedOut",
    "ProcessStopped",
    "ReloadCompleted",
    "ReloadRequested",
    "RestartCompleted",
    "RestartRequested",
    "RestartScheduled",
    "ShutdownCompleted",
    "ShutdownRequested",
    "TERMINAL_EVENTS",
]

ExitOutcome = Literal["ok", "error", "cancelled", "timeout"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LifecycleEvent:
    """Base class of all lifecycle events."""

    name: ClassVar[str] = "procman.event"
    supervisor: str
    time: float

    @property
    def path(self) -> str:
        """Where in the tree the event happened: the supervisor's path."""
        return self.supervisor


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildEvent(LifecycleEvent):
    """An event about one child of ``supervisor``: ``child`` is its name."""

    child: str

    @property
    def path(self) -> str:
        """``supervisor/child``: where in the tree the event happened."""
        return f"{self.supervisor}/{self.child}"


# -- one child run -------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessStarting(ChildEvent):
    """The manager scheduled a child (emitted once per child, from the caller's task)."""

    name: ClassVar[str] = "procman.child.starting"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessStarted(ChildEvent):
    """A child run began executing (inside the child's task)."""

    name: ClassVar[str] = "procman.child.started"
    restart_count: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessReady(ChildEvent):
    """A child run signalled readiness (``ctx.ready()`` / ``guard.ready()``).

    Emitted for children inserted with ``wait_ready=True`` and for nested
    managers once all their children are ready; ``duration`` is the time
    since the run started.
    """

    name: ClassVar[str] = "procman.child.ready"
    restart_count: int = 0
    duration: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessStopped(ChildEvent):
    """A child run returned normally."""

    name: ClassVar[str] = "procman.child.stopped"
    outcome: ClassVar[ExitOutcome] = "ok"
    restart_count: int = 0
    duration: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessFailed(ChildEvent):
    """A child run raised ``exception``."""

    name: ClassVar[str] = "procman.child.failed"
    outcome: ClassVar[ExitOutcome] = "error"
    restart_count: int = 0
    duration: float = 0.0
    exception: BaseException = field(compare=False)

    @property
    def error_type(self) -> str:
        """The exception's bare class name (what metrics use as a label)."""
        return type(self.exception).__name__


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessCancelled(ChildEvent):
    """A child run ended by cancellation.

    ``forced`` is true when the manager cancelled it because it did not stop
    within the grace period (outcome ``timeout``); ``requested`` is true when
    the cancellation was part of a shutdown (not an error).
    """

    name: ClassVar[str] = "procman.child.cancelled"
    restart_count: int = 0
    duration: float = 0.0
    forced: bool = False
    requested: bool = True

    @property
    def outcome(self) -> ExitOutcome:
        return "timeout" if self.forced else "cancelled"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessStopTimedOut(ChildEvent):
    """A child did not stop within the grace period and is being cancelled."""

    name: ClassVar[str] = "procman.child.stop_timeout"
    grace_period: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessAbandoned(ChildEvent):
    """A child ignored cancellation; the manager stopped waiting for it."""

    name: ClassVar[str] = "procman.child.abandoned"
    outcome: ClassVar[ExitOutcome] = "timeout"
    restart_count: int = 0
    duration: float = 0.0


# -- restarts --------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class RestartScheduled(ChildEvent):
    """A failed child will be restarted after ``delay`` seconds (restart ``attempt``)."""

    name: ClassVar[str] = "procman.child.restart_scheduled"
    attempt: int
    delay: float
    exception: BaseException | None = field(default=None, compare=False)
    strategy: str | None = None
    """The manager's strategy (``one_for_one`` ...); None for a RestartSupervisor."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessRestarted(ChildEvent):
    """The backoff elapsed and restart ``attempt`` begins."""

    name: ClassVar[str] = "procman.child.restarted"
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartRequested(LifecycleEvent):
    """A manager decided to restart ``children`` because ``trigger`` ended.

    One event per restart decision (a ONE_FOR_ALL / REST_FOR_ONE cascade is
    one decision); ``strategy`` is ``one_for_one``, ``one_for_all`` or
    ``rest_for_one``. The children's own events follow.
    """

    name: ClassVar[str] = "procman.restart.requested"
    strategy: str
    trigger: str
    children: tuple[str, ...] = ()
    exception: BaseException | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartCompleted(LifecycleEvent):
    """The children of a restart decision run again (or the restart was abandoned)."""

    name: ClassVar[str] = "procman.restart.completed"
    strategy: str
    trigger: str
    duration: float
    start_time: float = 0.0
    result: Literal["ok", "cancelled"] = "ok"


# -- manager operations ------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownRequested(LifecycleEvent):
    """A manager began its graceful shutdown. ``reason``: requested, failure, cancelled."""

    name: ClassVar[str] = "procman.shutdown.requested"
    reason: str
    children: int
    exception: BaseException | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownCompleted(LifecycleEvent):
    """A manager's children have all ended; ``duration`` since the request."""

    name: ClassVar[str] = "procman.shutdown.completed"
    duration: float
    forced: int = 0
    start_time: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadRequested(LifecycleEvent):
    """A manager began forwarding a reload to its ``children``."""

    name: ClassVar[str] = "procman.reload.requested"
    children: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadCompleted(LifecycleEvent):
    """A reload fan-out ended.

    ``result``: ok, error (a handler raised), timeout (a handler outlived the
    grace period and was cancelled) or cancelled (the caller of ``reload()``
    was cancelled; the handlers were cancelled too).
    """

    name: ClassVar[str] = "procman.reload.completed"
    duration: float
    result: Literal["ok", "error", "timeout", "cancelled"] = "ok"
    errors: int = 0
    start_time: float = 0.0


TERMINAL_EVENTS: tuple[type[LifecycleEvent], ...] = (
    ProcessStopped,
    ProcessFailed,
    ProcessCancelled,
    ProcessAbandoned,
)
"""The event classes that end a run (exactly one per started run)."""
