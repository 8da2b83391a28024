"""OpenTelemetry tracing backend: spans for child runs, shutdowns, reloads and restarts.

Library conventions: only the OpenTelemetry *API* is used (no SDK set-up
here); the tracer is ``get_tracer("procman", procman.__version__)`` from the
``tracer_provider`` given, or from the global provider.

Spans (all ``INTERNAL``):

``procman.child.run`` (``child_spans="run"``, the default)
    One span per run of a child, started at :class:`~procman.events.ProcessStarted`
    and made *current in the child's task*: spans and logs the child makes
    nest under it, and a nested manager's children nest under their
    manager's run span. Attributes ``procman.supervisor.name`` (tree path),
    ``procman.child.name``, ``procman.child.restart_count``,
    ``procman.child.exit_reason`` (ok, error, cancelled, timeout) and, on
    failure, ``error.type`` (the fully qualified exception class name;
    builtins without the ``builtins.`` prefix), the exception event and
    status ERROR with a short description. A cancellation that is part of a
    shutdown is not an error; an unexpected one is (``error.type``
    ``asyncio.exceptions.CancelledError``). A child abandoned after ignoring
    cancellation ends with status ERROR and ``error.type`` ``timeout``.
``procman.child.start`` + ``procman.child.exit`` (``child_spans="link"``)
    Two short spans per run instead of one long one: the start span ends at
    once (so it is exported at once) and its context is current in the
    child's task, so the child's own spans still nest under it; the exit
    span carries the exit attributes and status, is a sibling of the start
    span and links to it.
nothing per run (``child_spans="none"``)
    The child's task context is left alone; only the operation spans below.
``procman.shutdown``
    From :class:`~procman.events.ShutdownRequested` to
    :class:`~procman.events.ShutdownCompleted` (timestamps taken from the
    events): ``procman.shutdown.reason``, ``procman.shutdown.children``,
    ``procman.shutdown.forced_children``; an event per child stop timeout.
    A nested manager's shutdown is a child of its parent's open shutdown
    span, else of the manager's own run span.
``procman.reload``
    From :class:`~procman.events.ReloadRequested` to
    :class:`~procman.events.ReloadCompleted`: ``procman.reload.result``
    (status ERROR unless ok), ``procman.reload.children``, ``procman.reload.errors``.
``procman.child.restart``
    The backoff of a restarted child, from
    :class:`~procman.events.RestartScheduled` to :class:`~procman.events.ProcessRestarted`:
    ``procman.restart.attempt``, ``procman.restart.delay`` (seconds), the
    ``error.type`` that caused it, ``procman.restart.strategy`` when a
    manager's strategy restarts it. It links to the failed run and the next
    run links to it. A backoff cut
    short by a shutdown ends with ``procman.restart.interrupted`` true.
``procman.restart``
    A manager's restart decision, from :class:`~procman.events.RestartRequested`
    to :class:`~procman.events.RestartCompleted` (a ONE_FOR_ALL / REST_FOR_ONE
    cascade is one span): ``procman.restart.strategy``,
    ``procman.restart.trigger`` (the child whose end caused it),
    ``procman.restart.children`` (how many children it restarts),
    ``procman.restart.result`` (ok, cancelled) and the ``error.type`` of the
    failure that caused it. A child of the manager's run span when there is one.

Span event ``procman.child.ready`` on the run span (``child_spans="run"``)
when the child signals readiness (:class:`~procman.events.ProcessReady`,
emitted in the child's task): ``procman.child.duration`` (seconds since the
run started) and ``procman.child.restart_count``. In ``"link"`` mode the
start span has already ended, so readiness shows in logs and metrics only.

Every name comes from :mod:`procman.vocabulary`.

Current-context guarantee: the run span (or start span) is current in the
child's task from ``ProcessStarted`` until the terminal event has been
delivered to *every* observer, whatever their order, so a failure's log
record and metric exemplar carry the failed run's trace id. The span is
ended at the terminal event; the previous context is restored at the next
event of that task (a restart) or dies with the task. Put this observer
*first* in an observer list so that records of ``ProcessStarted`` carry the
run span as well.

Bookkeeping is O(1) per event: runs are kept by ``(supervisor, child)`` and
task. One tracing observer per tree: two would nest their run spans.

The observer dispatches to two parts: the child-run spans
(:mod:`procman.observe._otel_runs`) and the operation spans
(:mod:`procman.observe._otel_operations`); attribute keys and helpers are in
:mod:`procman.observe._otel_attributes`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    from opentelemetry import trace
except ImportError as exc:  # pragma: no cover - exercised with the extra missing
    raise ImportError(
        "procman.observe.OtelTracingObserver needs opentelemetry-api: pip install 'procman[otel]'"
    ) from exc

from procman._version import __version__
from procman.events import (
    LifecycleEvent,
    ProcessAbandoned,
    ProcessCancelled,
    ProcessFailed,
    ProcessReady,
    ProcessRestarted,
    ProcessStarted,
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

# The attribute keys stay importable from here, where they were defined before.
from procman.observe._otel_attributes import CHILD as CHILD
from procman.observe._otel_attributes import DURATION as DURATION
from procman.observe._otel_attributes import ERROR_TYPE as ERROR_TYPE
from procman.observe._otel_attributes import EXIT_REASON as EXIT_REASON
from procman.observe._otel_attributes import RESTART_COUNT as RESTART_COUNT
from procman.observe._otel_attributes import STRATEGY as STRATEGY
from procman.observe._otel_attributes import SUPERVISOR as SUPERVISOR
from procman.observe._otel_operations import OperationSpans
from procman.observe._otel_runs import ChildSpans, RunSpans

__all__ = ["ChildSpans", "OtelTracingObserver"]

_RUN_EVENTS: frozenset[type[LifecycleEvent]] = frozenset(
    {
        ProcessStarted,
        ProcessReady,
        ProcessStopped,
        ProcessFailed,
        ProcessCancelled,
        ProcessAbandoned,
    }
)
_OPERATION_EVENTS: frozenset[type[LifecycleEvent]] = frozenset(
    {
        ShutdownRequested,
        ShutdownCompleted,
        ProcessStopTimedOut,
        ReloadRequested,
        ReloadCompleted,
        RestartScheduled,
        ProcessRestarted,
        RestartRequested,
        RestartCompleted,
    }
)


class OtelTracingObserver:
    """Reports lifecycle events as OpenTelemetry spans (see the module docstring).

    ``child_spans`` chooses how child runs appear: ``"run"`` (one span per
    run, current in the child's task; exported only when the run ends),
    ``"link"`` (a short start span, current in the task, and a short exit
    span linked to it: everything exported at once) or ``"none"``.
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        child_spans: ChildSpans = "run",
    ) -> None:
        if child_spans not in ("run", "link", "none"):
            raise ValueError(f"child_spans must be 'run', 'link' or 'none', got {child_spans!r}")
        self.child_spans: ChildSpans = child_spans
        self.tracer = trace.get_tracer("procman", __version__, tracer_provider=tracer_provider)
        self._runs = runs = RunSpans(self.tracer, child_spans)
        self._operations = operations = OperationSpans(self.tracer, runs)
        wanted = set(_OPERATION_EVENTS)
        if child_spans != "none":
            wanted |= _RUN_EVENTS
        self._wanted = frozenset(wanted)
        handlers: dict[type[LifecycleEvent], Callable[[Any], None]] = {
            ShutdownRequested: operations.shutdown_requested,
            ShutdownCompleted: operations.shutdown_completed,
            ProcessStopTimedOut: operations.stop_timed_out,
            ReloadRequested: operations.reload_requested,
            ReloadCompleted: operations.reload_completed,
            RestartScheduled: operations.restart_scheduled,
            ProcessRestarted: operations.restarted,
            RestartRequested: operations.restart_requested,
            RestartCompleted: operations.restart_completed,
        }
        if child_spans != "none":
            handlers[ProcessStarted] = runs.started
            handlers[ProcessReady] = runs.ready
            for terminal in (ProcessStopped, ProcessFailed, ProcessCancelled):
                handlers[terminal] = runs.ended
            handlers[ProcessAbandoned] = runs.abandoned
        self._handlers = handlers

    # -- observer protocol -------------------------------------------------------
    def wants(self, event_type: type[LifecycleEvent]) -> bool:
        return event_type in self._wanted

    def on_event(self, event: LifecycleEvent) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    @property
    def open_spans(self) -> int:
        """Spans this observer has started and not yet ended (runs and operations)."""
        return self._runs.open_spans + self._operations.open_spans

    def __repr__(self) -> str:
        return f"OtelTracingObserver(child_spans={self.child_spans!r})"
