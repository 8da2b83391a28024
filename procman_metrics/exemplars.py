"""Trace-id exemplars: the active OpenTelemetry span as a Prometheus exemplar.

:func:`exemplar_source` returns ``None`` when the OpenTelemetry API is not
importable, so metrics without tracing pay one ``is None`` test per event.
Otherwise it returns a function giving ``{"trace_id": ..., "span_id": ...}``
(lower-case hex, the W3C form Grafana links to traces) while a valid span is
current in the calling context, and ``None`` otherwise.

The check runs on every counted event, so it reads the OpenTelemetry context
variable directly when the API uses its standard contextvars runtime context
(one C call, about 0.1 us when no span is active; the ``Span`` ABC check is
made once per span class) and falls back to the public ``get_current_span()``
otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from procman_metrics._deps import otel_available

__all__ = ["Exemplar", "exemplar_source"]

Exemplar = dict[str, str]


def exemplar_source() -> Callable[[], Exemplar | None] | None:
    """The exemplar function, or None when OpenTelemetry is not installed."""
    if not otel_available():
        return None
    from opentelemetry import context as otel_context
    from opentelemetry.trace import Span, get_current_span

    def from_span(span: Any) -> Exemplar | None:
        ctx = span.get_span_context()
        if not ctx.is_valid:
            return None
        return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}

    var = getattr(getattr(otel_context, "_RUNTIME_CONTEXT", None), "_current_context", None)
    from opentelemetry.trace import propagation

    span_key: object = getattr(propagation, "_SPAN_KEY", None)
    if isinstance(var, ContextVar) and isinstance(span_key, str):
        get_context = var.get

        span_types: set[type] = set()  # concrete classes already found to be Spans

        def fast() -> Exemplar | None:
            span = get_context().get(span_key)
            if span is None:
                return None
            if type(span) not in span_types:  # the ABC check once per class, not per event
                if not isinstance(span, Span):
                    return None
                span_types.add(type(span))
            ctx = span.get_span_context()
            if not ctx.is_valid:
                return None
            # %-formatting: about 0.2 us faster per event than format()
            return {"trace_id": "%032x" % ctx.trace_id, "span_id": "%016x" % ctx.span_id}  # noqa: UP031

        return fast

    def public() -> Exemplar | None:  # pragma: no cover - exercised only with a custom runtime
        return from_span(get_current_span())

    return public
