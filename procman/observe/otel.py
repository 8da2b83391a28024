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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Literal

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised with the extra missing
    raise ImportError(
        "procman.observe.OtelTracingObserver needs opentelemetry-api: pip install 'procman[otel]'"
    ) from exc

from procman import vocabulary as v
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
from procman.vocabulary import qualified_error_type

__all__ = ["ChildSpans", "OtelTracingObserver"]

ChildSpans = Literal["run", "link", "none"]

SUPERVISOR = v.SUPERVISOR.attribute_key
CHILD = v.CHILD.attribute_key
RESTART_COUNT = v.RESTART_COUNT.attribute_key
EXIT_REASON = v.OUTCOME.attribute_key
ERROR_TYPE = v.ERROR_TYPE.attribute_key
DURATION = v.DURATION.attribute_key
STRATEGY = v.STRATEGY.attribute_key

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
_DESCRIPTION_LIMIT = 200

# Context tokens whose detach waits for the next event of the task: (task, token) pairs.
_PENDING_DETACH: ContextVar[tuple[tuple[object, object], ...]] = ContextVar(
    "procman_otel_pending_detach", default=()
)
# The span of the run that failed last in this task: the cause a restart span links to.
_FAILED_RUN: ContextVar[SpanContext | None] = ContextVar("procman_otel_failed_run", default=None)


def _short(text: str) -> str:
    return text if len(text) <= _DESCRIPTION_LIMIT else text[: _DESCRIPTION_LIMIT - 3] + "..."


def _wall_ns(monotonic: float) -> int:
    """Convert a :func:`time.monotonic` timestamp to epoch nanoseconds."""
    return time.time_ns() - int((time.monotonic() - monotonic) * 1e9)


def _flush_pending() -> None:
    """Restore the context of ended runs of this task (their detach was deferred)."""
    pending = _PENDING_DETACH.get()
    if not pending:
        return
    _PENDING_DETACH.set(())
    task = asyncio.current_task()
    for owner, token in reversed(pending):
        if owner is task:  # a copied context (a child task) must not reset its parent's tokens
            otel_context.detach(token)  # type: ignore[arg-type]


class _Run:
    """One child run: its span (None in link mode), the context made current, the token."""

    __slots__ = ("context", "parent", "span", "start", "token")

    def __init__(
        self,
        span: Span | None,
        context: Context,
        token: object,
        parent: Context | None,
        start: SpanContext | None,
    ) -> None:
        self.span = span
        self.context = context
        self.token = token
        self.parent = parent
        self.start = start


_Key = tuple[str, str]


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
        self._runs: dict[_Key, dict[object, _Run]] = {}
        self._shutdowns: dict[str, Span] = {}
        self._reloads: dict[str, Span] = {}
        self._restarts: dict[tuple[str, str, object], tuple[Span, Any]] = {}
        self._restart_links: dict[tuple[str, str, object], SpanContext] = {}
        self._decisions: dict[tuple[str, str], Span] = {}
        self._failed_runs: dict[_Key, SpanContext] = {}
        wanted = set(_OPERATION_EVENTS)
        if child_spans != "none":
            wanted |= _RUN_EVENTS
        self._wanted = frozenset(wanted)
        handlers: dict[type[LifecycleEvent], Callable[[Any], None]] = {
            ShutdownRequested: self._shutdown_requested,
            ShutdownCompleted: self._shutdown_completed,
            ProcessStopTimedOut: self._stop_timed_out,
            ReloadRequested: self._reload_requested,
            ReloadCompleted: self._reload_completed,
            RestartScheduled: self._restart_scheduled,
            ProcessRestarted: self._restarted,
            RestartRequested: self._restart_requested,
            RestartCompleted: self._restart_completed,
        }
        if child_spans != "none":
            handlers[ProcessStarted] = self._started
            handlers[ProcessReady] = self._ready
            for terminal in (ProcessStopped, ProcessFailed, ProcessCancelled):
                handlers[terminal] = self._ended
            handlers[ProcessAbandoned] = self._abandoned
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
        runs = sum(len(group) for group in self._runs.values()) if self.child_spans == "run" else 0
        operations = len(self._shutdowns) + len(self._reloads) + len(self._decisions)
        return runs + operations + len(self._restarts)

    # -- child runs ----------------------------------------------------------------
    def _started(self, event: ProcessStarted) -> None:
        if _PENDING_DETACH.get():  # a restart: restore the context of the ended run first
            _flush_pending()
        task = asyncio.current_task()
        key = (event.supervisor, event.child)
        links = None
        if self._restart_links:
            cause = self._restart_links.pop((*key, task), None)
            if cause is None:  # a manager's restart: its backoff ran outside any task
                cause = self._restart_links.pop((*key, None), None)
            if cause is not None:
                links = [Link(cause)]
        attributes: dict[str, Any] = {
            SUPERVISOR: event.supervisor,
            CHILD: event.child,
            RESTART_COUNT: event.restart_count,
        }
        parent = otel_context.get_current()
        if self.child_spans == "run":
            span = self.tracer.start_span(
                v.CHILD_RUN_SPAN, parent, attributes=attributes, links=links
            )
            current = trace.set_span_in_context(span, parent)
            run = _Run(span, current, otel_context.attach(current), parent, None)
        else:
            start = self.tracer.start_span(
                v.CHILD_START_SPAN, parent, attributes=attributes, links=links
            )
            start.end()
            start_ctx = start.get_span_context()
            current = trace.set_span_in_context(NonRecordingSpan(start_ctx), parent)
            run = _Run(None, current, otel_context.attach(current), parent, start_ctx)
        group = self._runs.get(key)
        if group is None:
            group = self._runs[key] = {}
        previous = group.pop(task, None)
        if previous is not None:  # a run without its terminal event: do not leak its span
            self._finish(previous, previous.span, event, None)
        group[task] = run

    def _ready(self, event: ProcessReady) -> None:
        group = self._runs.get((event.supervisor, event.child))
        if group is None:
            return
        run = group.get(asyncio.current_task())
        if run is None and len(group) == 1:  # emitted outside the run's task (a nested manager)
            run = next(iter(group.values()))
        if run is not None and run.span is not None:
            run.span.add_event(
                v.READY_SPAN_EVENT,
                {DURATION: event.duration, RESTART_COUNT: event.restart_count},
            )

    def _pop_run(self, key: _Key, task: object) -> _Run | None:
        group = self._runs.get(key)
        if group is None:
            return None
        run = group.pop(task, None)
        if not group:
            del self._runs[key]
        return run

    def _ended(self, event: ProcessStopped | ProcessFailed | ProcessCancelled) -> None:
        task = asyncio.current_task()
        run = self._pop_run((event.supervisor, event.child), task)
        if run is None:
            return
        span = run.span
        if span is None:  # link mode: a short exit span, a sibling of the start span
            assert run.start is not None
            span = self.tracer.start_span(
                v.CHILD_EXIT_SPAN,
                run.parent,
                attributes={
                    SUPERVISOR: event.supervisor,
                    CHILD: event.child,
                    RESTART_COUNT: event.restart_count,
                    DURATION: event.duration,
                },
                links=[Link(run.start)],
            )
        self._finish(run, span, event, task)

    def _finish(self, run: _Run, span: Span | None, event: LifecycleEvent, task: object) -> None:
        """Set the exit attributes, end the span; defer the detach to the next task event."""
        if span is not None:
            match event:  # the most frequent end (a shutdown) first
                case ProcessCancelled():
                    span.set_attribute(EXIT_REASON, event.outcome)
                    if not event.requested:
                        span.set_attribute(ERROR_TYPE, qualified_error_type(asyncio.CancelledError))
                        span.set_status(Status(StatusCode.ERROR, "cancelled unexpectedly"))
                case ProcessStopped():
                    span.set_attribute(EXIT_REASON, "ok")
                case ProcessFailed(exception=exc):
                    kind = qualified_error_type(exc)
                    span.set_attribute(EXIT_REASON, "error")
                    span.set_attribute(ERROR_TYPE, kind)
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, _short(f"{kind}: {exc}")))
                    if task is not None:
                        failed = run.start or span.get_span_context()
                        _FAILED_RUN.set(failed)
                        # a manager schedules its restarts outside the child's task
                        self._failed_runs[(event.supervisor, event.child)] = failed
                case ProcessAbandoned():
                    span.set_attribute(EXIT_REASON, "timeout")
                    span.set_attribute(ERROR_TYPE, "timeout")
                    span.set_status(
                        Status(StatusCode.ERROR, "ignored cancellation; abandoned by its manager")
                    )
                case _:  # a new run started before this one reported its end
                    span.set_attribute(EXIT_REASON, "unknown")
            span.end()
        if task is not None:
            _PENDING_DETACH.set((*_PENDING_DETACH.get(), (task, run.token)))

    def _abandoned(self, event: ProcessAbandoned) -> None:
        # Emitted by the manager, not in the child's task: end without detaching. The
        # event does not say which task, so among same-named siblings the oldest run goes.
        key = (event.supervisor, event.child)
        group = self._runs.get(key)
        if not group:
            return
        task = next(iter(group))
        run = self._pop_run(key, task)
        assert run is not None
        span = run.span
        if span is None:
            span = self.tracer.start_span(
                v.CHILD_EXIT_SPAN,
                run.parent,
                attributes={SUPERVISOR: event.supervisor, CHILD: event.child},
                links=[Link(run.start)] if run.start is not None else None,
            )
        self._finish(run, span, event, None)

    def _run_context(self, path: str) -> Context | None:
        """The context of the run of the child at ``path`` (a nested manager), if unique."""
        supervisor, _, name = path.rpartition("/")
        group = self._runs.get((supervisor, name))
        if group is not None and len(group) == 1:
            return next(iter(group.values())).context
        return None

    def _operation_parent(self, path: str, open_spans: dict[str, Span]) -> Context | None:
        parent_path = path.rpartition("/")[0]
        parent_span = open_spans.get(parent_path) if parent_path else None
        if parent_span is not None:
            return trace.set_span_in_context(parent_span)
        return self._run_context(path)

    # -- shutdown -------------------------------------------------------------------
    def _shutdown_requested(self, event: ShutdownRequested) -> None:
        path = event.supervisor
        if self._decisions or self._restarts or self._failed_runs:
            self._drop_pending_restarts(path, _wall_ns(event.time))
        stale = self._shutdowns.pop(path, None)
        if stale is not None:  # a previous shutdown of this path never completed
            stale.end()
        self._shutdowns[path] = self.tracer.start_span(
            v.SHUTDOWN_SPAN,
            self._operation_parent(path, self._shutdowns),
            attributes={
                SUPERVISOR: path,
                v.REASON.attribute_key: event.reason,
                v.CHILDREN.attribute_key: event.children,
            },
            start_time=_wall_ns(event.time),
        )

    def _shutdown_completed(self, event: ShutdownCompleted) -> None:
        path = event.supervisor
        span = self._shutdowns.pop(path, None)
        if span is None:  # the request was not seen: rebuild the span from the timestamps
            span = self.tracer.start_span(
                v.SHUTDOWN_SPAN,
                self._operation_parent(path, self._shutdowns),
                attributes={SUPERVISOR: path},
                start_time=_wall_ns(event.start_time or event.time - event.duration),
            )
        span.set_attribute(v.FORCED.attribute_key, event.forced)
        span.end(end_time=_wall_ns(event.time))

    def _stop_timed_out(self, event: ProcessStopTimedOut) -> None:
        attributes: dict[str, Any] = {
            CHILD: event.child,
            v.GRACE_PERIOD.attribute_key: event.grace_period,
        }
        span = self._shutdowns.get(event.supervisor)
        if span is not None:
            span.add_event(v.STOP_TIMEOUT_SPAN_EVENT, attributes)
        group = self._runs.get((event.supervisor, event.child))
        if group is not None and len(group) == 1:
            run = next(iter(group.values()))
            if run.span is not None:
                run.span.add_event(v.STOP_TIMEOUT_SPAN_EVENT, attributes)

    # -- reload ---------------------------------------------------------------------
    def _reload_requested(self, event: ReloadRequested) -> None:
        path = event.supervisor
        stale = self._reloads.pop(path, None)
        if stale is not None:  # the previous reload was cancelled before it completed
            stale.set_attribute(v.RELOAD_RESULT.attribute_key, "interrupted")
            stale.end()
        self._reloads[path] = self.tracer.start_span(
            v.RELOAD_SPAN,
            self._operation_parent(path, self._reloads),
            attributes={SUPERVISOR: path, v.RELOAD_CHILDREN.attribute_key: event.children},
            start_time=_wall_ns(event.time),
        )

    def _reload_completed(self, event: ReloadCompleted) -> None:
        path = event.supervisor
        span = self._reloads.pop(path, None)
        if span is None:
            span = self.tracer.start_span(
                v.RELOAD_SPAN,
                self._operation_parent(path, self._reloads),
                attributes={SUPERVISOR: path},
                start_time=_wall_ns(event.start_time or event.time - event.duration),
            )
        span.set_attribute(v.RELOAD_RESULT.attribute_key, event.result)
        span.set_attribute(v.ERRORS.attribute_key, event.errors)
        if event.result != "ok":
            what = "timed out" if event.result == "timeout" else f"{event.errors} handler(s) raised"
            span.set_status(Status(StatusCode.ERROR, f"reload {what}"))
        span.end(end_time=_wall_ns(event.time))

    # -- restarts -------------------------------------------------------------------
    def _restart_scheduled(self, event: RestartScheduled) -> None:
        _flush_pending()
        task = asyncio.current_task()
        key = (event.supervisor, event.child, task)
        self._restart_interrupted(key)
        attributes: dict[str, Any] = {
            SUPERVISOR: event.supervisor,
            CHILD: event.child,
            v.ATTEMPT.attribute_key: event.attempt,
            v.DELAY.attribute_key: event.delay,
        }
        if event.strategy is not None:
            attributes[STRATEGY] = event.strategy
        if event.exception is not None:
            attributes[ERROR_TYPE] = qualified_error_type(event.exception)
        cause = _FAILED_RUN.get()
        if cause is not None:
            _FAILED_RUN.set(None)
        failed = self._failed_runs.pop((event.supervisor, event.child), None)
        if cause is None:
            cause = failed
        span = self.tracer.start_span(
            v.CHILD_RESTART_SPAN,
            attributes=attributes,
            links=[Link(cause)] if cause is not None else None,
            start_time=_wall_ns(event.time),
        )
        callback = None
        if task is not None:  # ends the span if the task ends during the backoff

            def callback(_task: object) -> None:
                self._restart_interrupted(key)

            task.add_done_callback(callback)
        self._restarts[key] = (span, callback)

    def _restarted(self, event: ProcessRestarted) -> None:
        _flush_pending()
        task = asyncio.current_task()
        key = (event.supervisor, event.child, task)
        entry = self._restarts.pop(key, None)
        if entry is None:
            return
        span, callback = entry
        if callback is not None and task is not None:
            task.remove_done_callback(callback)
        span.end(end_time=_wall_ns(event.time))
        if self.child_spans != "none":
            self._restart_links[key] = span.get_span_context()

    def _restart_interrupted(self, key: tuple[str, str, object]) -> None:
        """The task ended during a backoff (a shutdown cut it short)."""
        self._restart_links.pop(key, None)
        entry = self._restarts.pop(key, None)
        if entry is not None:
            span = entry[0]
            span.set_attribute(v.INTERRUPTED.attribute_key, True)
            span.end()

    # -- a manager's restart decisions -------------------------------------------------------
    def _restart_requested(self, event: RestartRequested) -> None:
        key = (event.supervisor, event.trigger)
        stale = self._decisions.pop(key, None)
        if stale is not None:  # the previous decision for this trigger never completed
            stale.end()
        attributes: dict[str, Any] = {
            SUPERVISOR: event.supervisor,
            STRATEGY: event.strategy,
            v.TRIGGER.attribute_key: event.trigger,
            v.RESTART_CHILDREN.attribute_key: len(event.children),
        }
        if event.exception is not None:
            attributes[ERROR_TYPE] = qualified_error_type(event.exception)
        self._decisions[key] = self.tracer.start_span(
            v.RESTART_SPAN,
            self._run_context(event.supervisor),
            attributes=attributes,
            start_time=_wall_ns(event.time),
        )

    def _restart_completed(self, event: RestartCompleted) -> None:
        span = self._decisions.pop((event.supervisor, event.trigger), None)
        if span is None:  # the request was not seen: rebuild the span from the timestamps
            span = self.tracer.start_span(
                v.RESTART_SPAN,
                self._run_context(event.supervisor),
                attributes={
                    SUPERVISOR: event.supervisor,
                    STRATEGY: event.strategy,
                    v.TRIGGER.attribute_key: event.trigger,
                },
                start_time=_wall_ns(event.start_time or event.time - event.duration),
            )
        span.set_attribute(v.RESTART_RESULT.attribute_key, event.result)
        span.end(end_time=_wall_ns(event.time))

    def _drop_pending_restarts(self, path: str, end_time: int) -> None:
        """A shutdown drops the restarts ``path`` has pending: end their spans.

        A manager's own restarts (backoffs timed by the manager, not by a
        task) and its open restart decisions end here as interrupted /
        cancelled; a task's backoff ends with its task.
        """
        for fkey in [k for k in self._failed_runs if k[0] == path]:
            del self._failed_runs[fkey]
        for key in [k for k in self._decisions if k[0] == path]:
            span = self._decisions.pop(key)
            span.set_attribute(v.RESTART_RESULT.attribute_key, "cancelled")
            span.end(end_time=end_time)
        for rkey in [k for k in self._restarts if k[0] == path and k[2] is None]:
            self._restart_links.pop(rkey, None)
            span = self._restarts.pop(rkey)[0]
            span.set_attribute(v.INTERRUPTED.attribute_key, True)
            span.end(end_time=end_time)

    def __repr__(self) -> str:
        return f"OtelTracingObserver(child_spans={self.child_spans!r})"
