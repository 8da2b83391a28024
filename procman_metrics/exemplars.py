"""Trace-id exemplars: the active OpenTelemetry span as a Prometheus exemplar.

:func:`exemplar_source` returns ``None`` when the OpenTelemetry API is not
importable, so metrics without tracing pay one ``is None`` test per event.
Otherwise it returns a function giving ``{"trace_id": ..., "span_id": ...}``
(lower-case hex, the W3C form Grafana links to traces) while a valid span is
current in the calling context, and ``None`` otherwise.

Only the public API is used: ``opentelemetry.context.get_current()`` and
``opentelemetry.trace.get_current_span(context)``. An empty context (no span,
no baggage: the common case without tracing) is answered without looking up
a span. Measured against the former private read of the runtime context
variable (``timeit``, CPython 3.11, min of 9 x 200k; quiet machine / shared
machine under load): no span current 0.27 / 0.35 us (private: 0.26 / 0.26),
a span current 2.2 / 5.0 us (private: 1.8 / 3.4), against the 20-50 us the
span itself costs per run: too little to justify an internal.
"""

from __future__ import annotations

from collections.abc import Callable

from procman_metrics._deps import otel_available

__all__ = ["Exemplar", "exemplar_source"]

Exemplar = dict[str, str]


def exemplar_source() -> Callable[[], Exemplar | None] | None:
    """The exemplar function, or None when OpenTelemetry is not installed."""
    if not otel_available():
        return None
    from opentelemetry.context import get_current
    from opentelemetry.trace import get_current_span

    def current() -> Exemplar | None:
        context = get_current()
        if not context:  # nothing is current: no span to look up
            return None
        ctx = get_current_span(context).get_span_context()
        if not ctx.is_valid:
            return None
        # %-formatting: about 0.2 us faster per event than format()
        return {"trace_id": "%032x" % ctx.trace_id, "span_id": "%016x" % ctx.span_id}  # noqa: UP031

    return current
