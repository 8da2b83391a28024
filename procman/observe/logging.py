"""The stdlib :mod:`logging` backend (the default observer).

Records go to the ``procman`` logger (which has a :class:`logging.NullHandler`,
as libraries do). Levels: failures and abandoned children at ERROR, restarts
(scheduled, or requested by a manager's strategy) and stop timeouts at
WARNING, readiness, completed restarts and manager operations at INFO,
per-child routine (starting, started, stopped, cancelled by a shutdown) at
DEBUG. Nothing is built for an event whose level the logger does not have
enabled.

Every record carries structured ``extra`` fields, named by
:mod:`procman.vocabulary` (``procman_`` + the concept): ``procman_event``
(the event name, e.g. ``procman.child.failed``), ``procman_supervisor``,
``procman_child`` (child events) and, where they apply, ``procman_outcome``,
``procman_error_type`` (bare class name), ``procman_error``
(``"Class: message"``), ``procman_duration``, ``procman_restart_count``,
``procman_attempt``, ``procman_delay``, ``procman_strategy``,
``procman_trigger``, ``procman_children`` (a count), ``procman_reason``,
``procman_forced``, ``procman_result``, ``procman_errors``,
``procman_grace_period``.
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
    ProcessReady,
    ProcessRestarted,
    ProcessStarted,
    ProcessStarting,
    ProcessStopped,
    ProcessStopTimedOut,
    ReloadCompleted,
    ReloadRequested,
    RestartCompleted,
    RestartRequested,
    RestartScheduled,
    ShutdownCompleted,
    ShutdownRequested,
)
from procman.vocabulary import (
    ATTEMPT,
    CHILD,
    CHILDREN,
    DELAY,
    DURATION,
    ERROR,
    ERROR_TYPE,
    ERRORS,
    EVENT,
    FORCED,
    GRACE_PERIOD,
    OUTCOME,
    REASON,
    RELOAD_RESULT,
    RESTART_COUNT,
    STRATEGY,
    SUPERVISOR,
    TRIGGER,
    error_type,
)

__all__ = ["LEVELS", "LoggingObserver", "describe", "level_of"]

LEVELS: dict[type[LifecycleEvent], int] = {
    ProcessStarting: logging.DEBUG,
    ProcessStarted: logging.DEBUG,
    ProcessReady: logging.INFO,
    ProcessStopped: logging.DEBUG,
    ProcessCancelled: logging.DEBUG,
    ProcessFailed: logging.ERROR,
    ProcessAbandoned: logging.ERROR,
    ProcessStopTimedOut: logging.WARNING,
    RestartScheduled: logging.WARNING,
    ProcessRestarted: logging.INFO,
    RestartRequested: logging.WARNING,
    RestartCompleted: logging.INFO,
    ShutdownRequested: logging.INFO,
    ShutdownCompleted: logging.INFO,
    ReloadRequested: logging.INFO,
    ReloadCompleted: logging.INFO,
}
"""The level of each event's record (a TerminationSignal failure is WARNING)."""

# the stdlib field names, resolved once
_EVENT = EVENT.log_key
_SUPERVISOR = SUPERVISOR.log_key
_CHILD = CHILD.log_key
_RESTART_COUNT = RESTART_COUNT.log_key
_DURATION = DURATION.log_key
_OUTCOME = OUTCOME.log_key
_ERROR_TYPE = ERROR_TYPE.log_key
_ERROR = ERROR.log_key
_ATTEMPT = ATTEMPT.log_key
_DELAY = DELAY.log_key
_STRATEGY = STRATEGY.log_key
_TRIGGER = TRIGGER.log_key
_CHILDREN = CHILDREN.log_key
_REASON = REASON.log_key
_FORCED = FORCED.log_key
_RESULT = RELOAD_RESULT.log_key
_ERRORS = ERRORS.log_key
_GRACE_PERIOD = GRACE_PERIOD.log_key


def _error(fields: dict[str, Any], exc: BaseException) -> str:
    """Add the error fields of ``exc``; return ``"Class: message"``."""
    kind = error_type(exc)
    text = f"{kind}: {exc}"
    fields[_ERROR_TYPE] = kind
    fields[_ERROR] = text
    return text


def describe(event: LifecycleEvent) -> tuple[str, dict[str, Any]]:
    """A human message and the stdlib ``extra`` fields for ``event`` (shared by log backends)."""
    fields: dict[str, Any] = {_EVENT: event.name, _SUPERVISOR: event.supervisor}
    if isinstance(event, ChildEvent):
        fields[_CHILD] = event.child
    path = event.path
    sup = event.supervisor
    match event:
        case ProcessStarting():
            msg = f"process {path} starting"
        case ProcessStarted(restart_count=n):
            fields[_RESTART_COUNT] = n
            msg = f"process {path} started"
        case ProcessReady(restart_count=n, duration=d):
            fields[_RESTART_COUNT] = n
            fields[_DURATION] = d
            msg = f"process {path} ready after {d:.3f}s"
        case ProcessStopped(restart_count=n, duration=d):
            fields.update({_OUTCOME: "ok", _DURATION: d, _RESTART_COUNT: n})
            msg = f"process {path} stopped after {d:.3f}s"
        case ProcessFailed(exception=exc, restart_count=n, duration=d):
            fields.update({_OUTCOME: "error", _DURATION: d, _RESTART_COUNT: n})
            msg = f"process {path} failed: {_error(fields, exc)}"
        case ProcessCancelled(restart_count=n, duration=d):
            fields.update({_OUTCOME: event.outcome, _DURATION: d, _RESTART_COUNT: n})
            how = "force-cancelled after the grace period" if event.forced else "cancelled"
            msg = f"process {path} {how}"
        case ProcessAbandoned(restart_count=n, duration=d):
            fields.update({_OUTCOME: "timeout", _DURATION: d, _RESTART_COUNT: n})
            msg = f"process {path} ignored cancellation and was abandoned"
        case ProcessStopTimedOut(grace_period=g):
            fields[_GRACE_PERIOD] = g
            msg = f"process {path} did not stop within {g:g}s; cancelling it"
        case RestartScheduled(attempt=a, delay=d, exception=exc, strategy=strategy):
            fields.update({_ATTEMPT: a, _DELAY: d})
            if strategy is not None:
                fields[_STRATEGY] = strategy
            if exc is not None:
                _error(fields, exc)
            msg = f"process {path} will restart in {d:.3f}s (attempt {a})"
        case ProcessRestarted(attempt=a):
            fields[_ATTEMPT] = a
            msg = f"process {path} restarting (attempt {a})"
        case RestartRequested(strategy=strategy, trigger=trigger, children=names, exception=exc):
            fields.update({_STRATEGY: strategy, _TRIGGER: trigger, _CHILDREN: len(names)})
            cause = "ended" if exc is None else f"failed ({_error(fields, exc)})"
            listed = ", ".join(names) if names else "none"
            msg = (
                f"supervisor {sup} restarting {len(names)} children ({strategy}) "
                f"because {trigger} {cause}: {listed}"
            )
        case RestartCompleted(strategy=strategy, trigger=trigger, duration=d, result=r):
            fields.update({_STRATEGY: strategy, _TRIGGER: trigger, _DURATION: d, _RESULT: r})
            if r == "ok":
                msg = f"supervisor {sup} restart after {trigger} ({strategy}) done in {d:.3f}s"
            else:
                msg = f"supervisor {sup} restart after {trigger} ({strategy}) {r} after {d:.3f}s"
        case ShutdownRequested(reason=r, children=n, exception=exc):
            fields.update({_REASON: r, _CHILDREN: n})
            if exc is not None:
                _error(fields, exc)
            msg = f"supervisor {sup} shutting down {n} children ({r})"
        case ShutdownCompleted(duration=d, forced=f):
            fields.update({_DURATION: d, _FORCED: f})
            msg = f"supervisor {sup} shut down in {d:.3f}s"
            if f:
                msg += f" ({f} force-cancelled)"
        case ReloadRequested(children=n):
            fields[_CHILDREN] = n
            msg = f"supervisor {sup} reloading {n} children"
        case ReloadCompleted(duration=d, result=r, errors=e):
            fields.update({_DURATION: d, _RESULT: r, _ERRORS: e})
            msg = f"supervisor {sup} reload {r} in {d:.3f}s"
        case _:
            msg = f"{event.name} {path}"
    return msg, fields


def level_of(event: LifecycleEvent) -> tuple[int, BaseException | None]:
    """The record's level and the exception to attach as its traceback (failures only)."""
    level = LEVELS.get(type(event), logging.INFO)
    if isinstance(event, ProcessFailed):
        if isinstance(event.exception, TerminationSignal):
            return logging.WARNING, None
        return level, event.exception
    return level, None


class LoggingObserver:
    """Logs lifecycle events to a stdlib logger (default ``procman``)."""

    def __init__(self, logger: logging.Logger | str = "procman") -> None:
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger

    def wants(self, event_type: type[LifecycleEvent]) -> bool:
        return self.logger.isEnabledFor(LEVELS.get(event_type, logging.INFO))

    def on_event(self, event: LifecycleEvent) -> None:
        if type(event) is ProcessFailed:
            level, exc_info = level_of(event)
        else:
            level, exc_info = LEVELS.get(type(event), logging.INFO), None
        logger = self.logger
        if not logger.isEnabledFor(level):
            return
        msg, fields = describe(event)
        logger.log(level, msg, exc_info=exc_info, extra=fields)

    def __repr__(self) -> str:
        return f"LoggingObserver({self.logger.name!r})"
