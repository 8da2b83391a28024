"""Operation spans of the tracing observer: shutdowns, reloads, restart backoffs and decisions."""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, Status, StatusCode

from procman import vocabulary as v
from procman.events import (
    ProcessRestarted,
    ProcessStopTimedOut,
    ReloadCompleted,
    ReloadRequested,
    RestartCompleted,
    RestartRequested,
    RestartScheduled,
    ShutdownCompleted,
    ShutdownRequested,
)
from procman.observe._otel_attributes import CHILD, ERROR_TYPE, STRATEGY, SUPERVISOR, wall_ns
from procman.observe._otel_runs import FAILED_RUN, RunSpans, flush_pending
from procman.vocabulary import qualified_error_type


class OperationSpans:
    """The open operation spans, kept by supervisor path (and child, task for backoffs).

    ``runs`` gives the run spans operations nest under, and the links
    between failed runs, restart backoffs and the next runs.
    """

    def __init__(self, tracer: trace.Tracer, runs: RunSpans) -> None:
        self.tracer = tracer
        self.runs = runs
        self._shutdowns: dict[str, Span] = {}
        self._reloads: dict[str, Span] = {}
        self._restarts: dict[tuple[str, str, object], tuple[Span, Any]] = {}
        self._decisions: dict[tuple[str, str], Span] = {}

    @property
    def open_spans(self) -> int:
        """Operation spans started and not yet ended."""
        operations = len(self._shutdowns) + len(self._reloads) + len(self._decisions)
        return operations + len(self._restarts)

    def _operation_parent(self, path: str, open_spans: dict[str, Span]) -> Context | None:
        parent_path = path.rpartition("/")[0]
        parent_span = open_spans.get(parent_path) if parent_path else None
        if parent_span is not None:
            return trace.set_span_in_context(parent_span)
        return self.runs.context_of(path)

    # -- shutdown -------------------------------------------------------------------
    def shutdown_requested(self, event: ShutdownRequested) -> None:
        path = event.supervisor
        if self._decisions or self._restarts or self.runs.failed_runs:
            self._drop_pending_restarts(path, wall_ns(event.time))
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
            start_time=wall_ns(event.time),
        )

    def shutdown_completed(self, event: ShutdownCompleted) -> None:
        path = event.supervisor
        span = self._shutdowns.pop(path, None)
        if span is None:
            parent = self._operation_parent(path, self._shutdowns)
            span = self._rebuilt(v.SHUTDOWN_SPAN, parent, {SUPERVISOR: path}, event)
        span.set_attribute(v.FORCED.attribute_key, event.forced)
        span.end(end_time=wall_ns(event.time))

    def stop_timed_out(self, event: ProcessStopTimedOut) -> None:
        attributes: dict[str, Any] = {
            CHILD: event.child,
            v.GRACE_PERIOD.attribute_key: event.grace_period,
        }
        span = self._shutdowns.get(event.supervisor)
        if span is not None:
            span.add_event(v.STOP_TIMEOUT_SPAN_EVENT, attributes)
        self.runs.stop_timed_out(event, attributes)

    # -- reload ---------------------------------------------------------------------
    def reload_requested(self, event: ReloadRequested) -> None:
        path = event.supervisor
        stale = self._reloads.pop(path, None)
        if stale is not None:  # the previous reload was cancelled before it completed
            stale.set_attribute(v.RELOAD_RESULT.attribute_key, "interrupted")
            stale.end()
        self._reloads[path] = self.tracer.start_span(
            v.RELOAD_SPAN,
            self._operation_parent(path, self._reloads),
            attributes={SUPERVISOR: path, v.RELOAD_CHILDREN.attribute_key: event.children},
            start_time=wall_ns(event.time),
        )

    def reload_completed(self, event: ReloadCompleted) -> None:
        path = event.supervisor
        span = self._reloads.pop(path, None)
        if span is None:
            parent = self._operation_parent(path, self._reloads)
            span = self._rebuilt(v.RELOAD_SPAN, parent, {SUPERVISOR: path}, event)
        span.set_attribute(v.RELOAD_RESULT.attribute_key, event.result)
        span.set_attribute(v.ERRORS.attribute_key, event.errors)
        if event.result != "ok":
            what = "timed out" if event.result == "timeout" else f"{event.errors} handler(s) raised"
            span.set_status(Status(StatusCode.ERROR, f"reload {what}"))
        span.end(end_time=wall_ns(event.time))

    # -- restarts -------------------------------------------------------------------
    def restart_scheduled(self, event: RestartScheduled) -> None:
        flush_pending()
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
        cause = FAILED_RUN.get()
        if cause is not None:
            FAILED_RUN.set(None)
        failed = self.runs.failed_runs.pop((event.supervisor, event.child), None)
        if cause is None:
            cause = failed
        span = self.tracer.start_span(
            v.CHILD_RESTART_SPAN,
            attributes=attributes,
            links=[Link(cause)] if cause is not None else None,
            start_time=wall_ns(event.time),
        )
        callback = None
        if task is not None:  # ends the span if the task ends during the backoff

            def callback(_task: object) -> None:
                self._restart_interrupted(key)

            task.add_done_callback(callback)
        self._restarts[key] = (span, callback)

    def restarted(self, event: ProcessRestarted) -> None:
        flush_pending()
        task = asyncio.current_task()
        key = (event.supervisor, event.child, task)
        entry = self._restarts.pop(key, None)
        if entry is None:
            return
        span, callback = entry
        if callback is not None and task is not None:
            task.remove_done_callback(callback)
        span.end(end_time=wall_ns(event.time))
        if self.runs.mode != "none":
            self.runs.restart_links[key] = span.get_span_context()

    def _restart_interrupted(self, key: tuple[str, str, object]) -> None:
        """The task ended during a backoff (a shutdown cut it short)."""
        self.runs.restart_links.pop(key, None)
        entry = self._restarts.pop(key, None)
        if entry is not None:
            span = entry[0]
            span.set_attribute(v.INTERRUPTED.attribute_key, True)
            span.end()

    # -- a manager's restart decisions -------------------------------------------------------
    def restart_requested(self, event: RestartRequested) -> None:
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
            self.runs.context_of(event.supervisor),
            attributes=attributes,
            start_time=wall_ns(event.time),
        )

    def restart_completed(self, event: RestartCompleted) -> None:
        span = self._decisions.pop((event.supervisor, event.trigger), None)
        if span is None:
            attributes = {
                SUPERVISOR: event.supervisor,
                STRATEGY: event.strategy,
                v.TRIGGER.attribute_key: event.trigger,
            }
            parent = self.runs.context_of(event.supervisor)
            span = self._rebuilt(v.RESTART_SPAN, parent, attributes, event)
        span.set_attribute(v.RESTART_RESULT.attribute_key, event.result)
        span.end(end_time=wall_ns(event.time))

    def _rebuilt(
        self,
        name: str,
        parent: Context | None,
        attributes: dict[str, Any],
        event: ShutdownCompleted | ReloadCompleted | RestartCompleted,
    ) -> Span:
        """The span of an operation whose request was not seen, from its completion's timestamps."""
        start = wall_ns(event.start_time or event.time - event.duration)
        return self.tracer.start_span(name, parent, attributes=attributes, start_time=start)

    def _drop_pending_restarts(self, path: str, end_time: int) -> None:
        """A shutdown drops the restarts ``path`` has pending: end their spans.

        A manager's own restarts (backoffs timed by the manager, not by a
        task) and its open restart decisions end here as interrupted /
        cancelled; a task's backoff ends with its task.
        """
        failed_runs, restart_links = self.runs.failed_runs, self.runs.restart_links
        for fkey in [k for k in failed_runs if k[0] == path]:
            del failed_runs[fkey]
        for key in [k for k in self._decisions if k[0] == path]:
            span = self._decisions.pop(key)
            span.set_attribute(v.RESTART_RESULT.attribute_key, "cancelled")
            span.end(end_time=end_time)
        for rkey in [k for k in self._restarts if k[0] == path and k[2] is None]:
            restart_links.pop(rkey, None)
            span = self._restarts.pop(rkey)[0]
            span.set_attribute(v.INTERRUPTED.attribute_key, True)
            span.end(end_time=end_time)
