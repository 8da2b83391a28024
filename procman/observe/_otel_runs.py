"""Child-run spans of the tracing observer: one per run (or a start/exit pair), in its task."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Any, Literal

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, Status, StatusCode

from procman import vocabulary as v
from procman.events import (
    LifecycleEvent,
    ProcessAbandoned,
    ProcessCancelled,
    ProcessFailed,
    ProcessReady,
    ProcessStarted,
    ProcessStopped,
    ProcessStopTimedOut,
)
from procman.observe._otel_attributes import (
    CHILD,
    DURATION,
    ERROR_TYPE,
    EXIT_REASON,
    RESTART_COUNT,
    SUPERVISOR,
    short,
)
from procman.vocabulary import qualified_error_type

ChildSpans = Literal["run", "link", "none"]

# Context tokens whose detach waits for the next event of the task: (task, token) pairs.
_PENDING_DETACH: ContextVar[tuple[tuple[object, object], ...]] = ContextVar(
    "procman_otel_pending_detach", default=()
)
# The span of the run that failed last in this task: the cause a restart span links to.
FAILED_RUN: ContextVar[SpanContext | None] = ContextVar("procman_otel_failed_run", default=None)


def flush_pending() -> None:
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


Key = tuple[str, str]


class RunSpans:
    """The open runs of child processes, kept by ``(supervisor, child)`` and task.

    Also the links between runs and restart backoffs: :attr:`failed_runs`
    (the run a manager's restart links to) and :attr:`restart_links` (the
    restart the next run links to), which the operation spans fill and use.
    """

    def __init__(self, tracer: trace.Tracer, mode: ChildSpans) -> None:
        self.tracer = tracer
        self.mode: ChildSpans = mode
        self.runs: dict[Key, dict[object, _Run]] = {}
        self.restart_links: dict[tuple[str, str, object], SpanContext] = {}
        self.failed_runs: dict[Key, SpanContext] = {}

    @property
    def open_spans(self) -> int:
        """Run spans started and not yet ended (none in link mode: its spans end at once)."""
        return sum(len(group) for group in self.runs.values()) if self.mode == "run" else 0

    def started(self, event: ProcessStarted) -> None:
        if _PENDING_DETACH.get():  # a restart: restore the context of the ended run first
            flush_pending()
        task = asyncio.current_task()
        key = (event.supervisor, event.child)
        links = None
        if self.restart_links:
            cause = self.restart_links.pop((*key, task), None)
            if cause is None:  # a manager's restart: its backoff ran outside any task
                cause = self.restart_links.pop((*key, None), None)
            if cause is not None:
                links = [Link(cause)]
        attributes: dict[str, Any] = {
            SUPERVISOR: event.supervisor,
            CHILD: event.child,
            RESTART_COUNT: event.restart_count,
        }
        parent = otel_context.get_current()
        if self.mode == "run":
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
        group = self.runs.get(key)
        if group is None:
            group = self.runs[key] = {}
        previous = group.pop(task, None)
        if previous is not None:  # a run without its terminal event: do not leak its span
            self._finish(previous, previous.span, event, None)
        group[task] = run

    def ready(self, event: ProcessReady) -> None:
        group = self.runs.get((event.supervisor, event.child))
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

    def _pop_run(self, key: Key, task: object) -> _Run | None:
        group = self.runs.get(key)
        if group is None:
            return None
        run = group.pop(task, None)
        if not group:
            del self.runs[key]
        return run

    def ended(self, event: ProcessStopped | ProcessFailed | ProcessCancelled) -> None:
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
                    span.set_status(Status(StatusCode.ERROR, short(f"{kind}: {exc}")))
                    if task is not None:
                        failed = run.start or span.get_span_context()
                        FAILED_RUN.set(failed)
                        # a manager schedules its restarts outside the child's task
                        self.failed_runs[(event.supervisor, event.child)] = failed
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

    def abandoned(self, event: ProcessAbandoned) -> None:
        # Emitted by the manager, not in the child's task: end without detaching. The
        # event does not say which task, so among same-named siblings the oldest run goes.
        key = (event.supervisor, event.child)
        group = self.runs.get(key)
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

    def stop_timed_out(self, event: ProcessStopTimedOut, attributes: dict[str, Any]) -> None:
        """Add the stop-timeout event to the run span of the child, if unique."""
        group = self.runs.get((event.supervisor, event.child))
        if group is not None and len(group) == 1:
            run = next(iter(group.values()))
            if run.span is not None:
                run.span.add_event(v.STOP_TIMEOUT_SPAN_EVENT, attributes)

    def context_of(self, path: str) -> Context | None:
        """The context of the run of the child at ``path`` (a nested manager), if unique."""
        supervisor, _, name = path.rpartition("/")
        group = self.runs.get((supervisor, name))
        if group is not None and len(group) == 1:
            return next(iter(group.values())).context
        return None
