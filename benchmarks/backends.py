"""Observer back-ends for the instrumented configurations, imported lazily.

Each ``make_*`` function returns ``(observers, cleanup)`` or raises
:class:`Unavailable` when the back-end (or the procman module that wraps it)
is not importable, so the harness marks that configuration "unavailable"
instead of failing.

Settings, identical for procman and the hand-wired floor:

* logging: the ``procman`` logger with only its library ``NullHandler`` and
  the default root level (WARNING), so per-child DEBUG records are not built;
* Prometheus: a private ``CollectorRegistry`` (never scraped);
* OpenTelemetry: an SDK ``TracerProvider`` with a ``BatchSpanProcessor``
  feeding an exporter that drops every batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any


class Unavailable(Exception):
    """A back-end or the procman module wrapping it cannot be imported."""


Cleanup = Callable[[], None]


def _noop() -> None:
    return None


def tracer_provider() -> tuple[Any, Cleanup]:
    """An SDK TracerProvider exporting through a batch processor to a dropping exporter."""
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
    except ImportError as exc:
        raise Unavailable(f"opentelemetry-sdk: {exc}") from exc

    class DroppingExporter(SpanExporter):
        """Accepts every batch and keeps nothing."""

        def __init__(self) -> None:
            self.spans = 0

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            self.spans += len(spans)
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            return None

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DroppingExporter()))
    return provider, provider.shutdown


def make_logging() -> tuple[list[Any], Cleanup]:
    from procman.observe.logging import LoggingObserver

    return [LoggingObserver()], _noop


def make_prometheus() -> tuple[list[Any], Cleanup]:
    try:
        from prometheus_client import CollectorRegistry

        from procman_metrics import PrometheusMetrics
    except ImportError as exc:
        raise Unavailable(f"procman_metrics.PrometheusMetrics: {exc}") from exc
    return [PrometheusMetrics(registry=CollectorRegistry())], _noop


def _otel_observer_class() -> Any:
    errors = []
    for module in ("procman.observe.otel", "procman.observe"):
        try:
            mod = __import__(module, fromlist=["OtelTracingObserver"])
        except ImportError as exc:
            errors.append(f"{module}: {exc}")
            continue
        cls = getattr(mod, "OtelTracingObserver", None)
        if cls is not None:
            return cls
        errors.append(f"{module} has no OtelTracingObserver")
    raise Unavailable("; ".join(errors))


def make_otel() -> tuple[list[Any], Cleanup]:
    cls = _otel_observer_class()
    provider, cleanup = tracer_provider()
    return [cls(tracer_provider=provider)], cleanup


def make_all() -> tuple[list[Any], Cleanup]:
    observers: list[Any] = []
    cleanups: list[Cleanup] = []
    for make in (make_logging, make_prometheus, make_otel):
        obs, cleanup = make()
        observers.extend(obs)
        cleanups.append(cleanup)

    def cleanup_all() -> None:
        for c in cleanups:
            c()

    return observers, cleanup_all


OBSERVERS: dict[str, Callable[[], tuple[list[Any], Cleanup]]] = {
    "none": lambda: ([], _noop),
    "logging": make_logging,
    "prometheus": make_prometheus,
    "otel": make_otel,
    "all": make_all,
}


class Floor:
    """The same three back-ends hand-wired around bare tasks.

    Per child: one span (current in the child's task while it runs), one
    labelled counter increment and one log call at DEBUG on the ``procman``
    logger (the level procman's logging observer uses for per-child events).
    """

    def __init__(self) -> None:
        try:
            from opentelemetry import context, trace
            from prometheus_client import CollectorRegistry, Counter
        except ImportError as exc:
            raise Unavailable(f"floor back-ends: {exc}") from exc
        import procman  # noqa: F401  (gives the procman logger its NullHandler, as for procman)

        provider, self.cleanup = tracer_provider()
        self.tracer = provider.get_tracer("procman-bench-floor")
        self._trace = trace
        self._context = context
        self.registry = CollectorRegistry()
        self.starts = Counter(
            "bench_child_starts",
            "child starts",
            ["supervisor", "child"],
            registry=self.registry,
        )
        self.log = logging.getLogger("procman")

    def enter(self, supervisor: str, child: str) -> tuple[Any, object]:
        """Begin one child run: span made current, counter, log call."""
        span = self.tracer.start_span(
            "procman.child.run",
            attributes={"procman.supervisor.name": supervisor, "procman.child.name": child},
        )
        token = self._context.attach(self._trace.set_span_in_context(span))
        self.starts.labels(supervisor, child).inc()
        self.log.debug("process %s/%s started", supervisor, child)
        return span, token

    def exit(self, run: tuple[Any, object], error: BaseException | None = None) -> None:
        span, token = run
        if error is not None:
            span.record_exception(error)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, type(error).__name__))
            self.log.error("process crashed", exc_info=error)
        self._context.detach(token)  # type: ignore[arg-type]
        span.end()
