"""Trace-correlated stdlib log records: a :class:`logging.Filter` adding trace ids.

The stdlib backend (:class:`procman.observe.LoggingObserver`) already puts the
event name on every record (``procman_event``). :class:`TraceContextFilter`
adds the ids of the span current when the record is made, in the field names
of ``opentelemetry-instrumentation-logging``:

* ``otelTraceID`` (32 hex digits), ``otelSpanID`` (16 hex digits),
  ``otelTraceSampled`` (bool); ``"0"`` ids and False outside any span;
* ``procman_event`` set to ``""`` on records that are not procman events, so a
  format string such as ``"%(procman_event)s trace=%(otelTraceID)s"`` works
  for every record of the handler.

Inside a child, the span current is the child's ``procman.child.run`` span
(see :mod:`procman.observe.otel`), also while the run's terminal event is
logged. Attach the filter to *handlers* (a logger's filters do not see the
records of its child loggers)::

    handler.addFilter(TraceContextFilter())

An OpenTelemetry ``LoggingHandler`` needs no filter: it reads the current
span itself and exports ``procman_event`` and the other ``procman_*`` fields
as log attributes.
"""

from __future__ import annotations

import logging

try:
    from opentelemetry.trace import get_current_span
except ImportError as exc:  # pragma: no cover - exercised with the extra missing
    raise ImportError(
        "procman.observe.TraceContextFilter needs opentelemetry-api: pip install 'procman[otel]'"
    ) from exc

from procman.vocabulary import EVENT, SPAN_ID, TRACE_ID

__all__ = ["TraceContextFilter", "current_trace_ids"]

_NO_TRACE = "0"
_EVENT = EVENT.log_key  # procman_event
_TRACE_ID = TRACE_ID.log_key  # otelTraceID
_SPAN_ID = SPAN_ID.log_key  # otelSpanID
_SAMPLED = "otelTraceSampled"


def current_trace_ids() -> tuple[str, str, bool] | None:
    """``(trace_id, span_id, sampled)`` in lower-case hex of the current span, or None."""
    ctx = get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"), ctx.trace_flags.sampled


class TraceContextFilter(logging.Filter):
    """Adds ``otelTraceID``, ``otelSpanID``, ``otelTraceSampled`` and ``procman_event``.

    Never drops a record. Fields already present on a record are kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        if _EVENT not in fields:
            fields[_EVENT] = ""
        if _TRACE_ID not in fields:
            ids = current_trace_ids()
            if ids is None:
                fields[_TRACE_ID] = fields[_SPAN_ID] = _NO_TRACE
                fields[_SAMPLED] = False
            else:
                fields[_TRACE_ID], fields[_SPAN_ID], fields[_SAMPLED] = ids
        return True
