"""Trace-id exemplars: the active OpenTelemetry span as a Prometheus exemplar.

:func:`exemplar_source` returns ``None`` when the OpenTelemetry API is not
importable, so metrics without tracing pay one ``is None`` test per event.
Otherwise it returns a function giving ``{"trace_id": ..., "span_id": ...}``
(lower-case hex, the W3C form Grafana links to traces) while a valid span is
current in the calling context, and ``None`` otherwise.
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
    from opentelemetry.trace import get_current_span

    def current() -> Exemplar | None:
        ctx = get_current_span().get_span_context()
        if not ctx.is_valid:
            return None
        return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}

    return current
