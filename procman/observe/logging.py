"""The stdlib :mod:`logging` backend (the default observer).

Records go to the ``procman`` logger (which has a :class:`logging.NullHandler`,
as libraries do). Levels: failures and abandoned children at ERROR, restarts
scheduled and stop timeouts at WARNING, manager operations at INFO, per-child
routine (starting, started, stopped, cancelled by a shutdown) at DEBUG.
Nothing is built for an event whose level the logger does not have enabled.

Every record carries structured ``extra`` fields: ``procman_event`` (the
event name, e.g. ``procman.child.failed``), ``procman_supervisor``,
``procman_child`` and, where they apply, ``procman_outcome``,
``procman_error_type``, ``procman_duration``, ``procman_attempt``,
``procman_delay``, ``procman_restart_count``.
"""

from __future__ import annotations

import logging
from typing import Any

from procman.errors import TerminationSignal
from procman.events import (
    ChildEvent,
    LifecycleEvent,
    ProcessAbandoned,
    ProcessCancelled,
    ProcessFailed,
    ProcessRestarted,
    ProcessStarted,
    ProcessStarting,
    ProcessStopped,
    ProcessStopTimedOut,
    ReloadCompleted,
    ReloadRequested,
    RestartScheduled,
    ShutdownCompleted,
    ShutdownRequested,
)

__all__ = ["LoggingObserver", "describe"]

LEVELS: dict[type[LifecycleEvent], int] = {
    ProcessStarting: logging.DEBUG,
    ProcessStarted: logging.DEBUG,
    ProcessStopped: logging.DEBUG,
    ProcessCancelled: logging.DEBUG,
    ProcessFailed: logging.ERROR,
    ProcessAbandoned: logging.ERROR,
    ProcessStopTimedOut: logging.WARNING,
    RestartScheduled: logging.WARNING,
    ProcessRestarted: logging.INFO,
    ShutdownRequested: logging.INFO,
    ShutdownCompleted: logging.INFO,
    ReloadRequested: logging.INFO,
    ReloadCompleted: logging.INFO,
}


def describe(event: LifecycleEvent) -> tuple[str, dict[str, Any]]:
    """A human message and the structured fields for ``event`` (shared by log backends)."""
    fields: dict[str, Any] = {
        "procman_event": event.name,
        "procman_supervisor": event.supervisor,
    }
    if isinstance(event, ChildEvent):
        fields["procman_child"] = event.child
    path = event.path
    match event:
        case ProcessStarting():
            msg = f"process {path} starting"
        case ProcessStarted(restart_count=n):
            fields["procman_restart_count"] = n
            msg = f"process {path} started"
        case ProcessStopped(duration=d):
            fields.update(procman_outcome="ok", procman_duration=d)
            msg = f"process {path} stopped after {d:.3f}s"
        case ProcessFailed(exception=exc, duration=d):
            fields.update(
                procman_outcome="error", procman_error_type=event.error_type, procman_duration=d
            )
            msg = f"process {path} failed: {type(exc).__name__}: {exc}"
        case ProcessCancelled(duration=d):
            fields.update(procman_outcome=event.outcome, procman_duration=d)
            how = "force-cancelled after the grace period" if event.forced else "cancelled"
            msg = f"process {path} {how}"
        case ProcessAbandoned():
            fields["procman_outcome"] = "timeout"
            msg = f"process {path} ignored cancellation and was abandoned"
        case ProcessStopTimedOut(grace_period=g):
            fields["procman_grace_period"] = g
            msg = f"process {path} did not stop within {g:g}s; cancelling it"
        case RestartScheduled(attempt=a, delay=d):
            fields.update(procman_attempt=a, procman_delay=d)
            msg = f"process {path} will restart in {d:.3f}s (attempt {a})"
        case ProcessRestarted(attempt=a):
            fields["procman_attempt"] = a
            msg = f"process {path} restarting (attempt {a})"
        case ShutdownRequested(reason=r, children=n):
            fields.update(procman_reason=r, procman_children=n)
            msg = f"supervisor {event.supervisor} shutting down {n} children ({r})"
        case ShutdownCompleted(duration=d, forced=f):
            fields.update(procman_duration=d, procman_forced=f)
            msg = f"supervisor {event.supervisor} shut down in {d:.3f}s"
            if f:
                msg += f" ({f} force-cancelled)"
        case ReloadRequested(children=n):
            fields["procman_children"] = n
            msg = f"supervisor {event.supervisor} reloading {n} children"
        case ReloadCompleted(duration=d, result=r):
            fields.update(procman_duration=d, procman_result=r)
            msg = f"supervisor {event.supervisor} reload {r} in {d:.3f}s"
        case _:
            msg = f"{event.name} {path}"
    return msg, fields


class LoggingObserver:
    """Logs lifecycle events to a stdlib logger (default ``procman``)."""

    def __init__(self, logger: logging.Logger | str = "procman") -> None:
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger

    def wants(self, event_type: type[LifecycleEvent]) -> bool:
        return self.logger.isEnabledFor(LEVELS.get(event_type, logging.INFO))

    def on_event(self, event: LifecycleEvent) -> None:
        level = LEVELS.get(type(event), logging.INFO)
        exc_info: BaseException | None = None
        if isinstance(event, ProcessFailed):
            if isinstance(event.exception, TerminationSignal):
                level = logging.WARNING
            else:
                exc_info = event.exception
        logger = self.logger
        if not logger.isEnabledFor(level):
            return
        msg, fields = describe(event)
        logger.log(level, msg, exc_info=exc_info, extra=fields)

    def __repr__(self) -> str:
        return f"LoggingObserver({self.logger.name!r})"
