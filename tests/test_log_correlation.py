"""Trace-correlated stdlib logs: TraceContextFilter and the OTel SDK LoggingHandler."""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Iterator

import pytest
from helpers import Worker
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from procman import ProcessManager, RuntimeContext, runnable
from procman.observe import LoggingObserver, OtelTracingObserver, TraceContextFilter
from procman.observer import Observer

app_log = logging.getLogger("procman_test_app")


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def event(self, name: str, child: str) -> logging.LogRecord:
        [record] = [
            r
            for r in self.records
            if getattr(r, "procman_event", "") == name and getattr(r, "procman_child", "") == child
        ]
        return record


@pytest.fixture
def tracing() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


@pytest.fixture
def procman_debug() -> Iterator[None]:
    loggers = [logging.getLogger("procman"), app_log]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    yield
    for lg, level in zip(loggers, levels, strict=True):
        lg.setLevel(level)


def run_span(exporter: InMemorySpanExporter, child: str) -> ReadableSpan:
    [span] = [
        s
        for s in exporter.get_finished_spans()
        if s.name == "procman.child.run" and (s.attributes or {})["procman.child.name"] == child
    ]
    return span


async def failing_tree(observers: list[Observer]) -> None:
    async def chatty(ctx: RuntimeContext) -> None:
        app_log.info("working in a child")
        await asyncio.sleep(0.02)
        raise ValueError("broken pipe")

    root = ProcessManager("root", observers=observers)
    nested = ProcessManager("nested")
    nested.insert(runnable(chatty, name="chatty"))
    root.insert(nested)
    root.insert(Worker("steady"))
    with pytest.raises(ValueError):
        await asyncio.wait_for(root.process_start(), 10)


@pytest.mark.parametrize("otel_first", [True, False])
async def test_filter_adds_ids_of_the_child_span(
    tracing: tuple[TracerProvider, InMemorySpanExporter], procman_debug: None, otel_first: bool
) -> None:
    provider, exporter = tracing
    capture = Capture()
    capture.addFilter(TraceContextFilter())
    for name in ("procman", app_log.name):
        logging.getLogger(name).addHandler(capture)
    observers: list[Observer] = [OtelTracingObserver(provider), LoggingObserver()]
    if not otel_first:
        observers.reverse()
    try:
        await failing_tree(observers)
    finally:
        for name in ("procman", app_log.name):
            logging.getLogger(name).removeHandler(capture)
    chatty = run_span(exporter, "chatty").get_span_context()
    assert chatty is not None
    trace_hex, span_hex = format(chatty.trace_id, "032x"), format(chatty.span_id, "016x")
    failed = capture.event("procman.child.failed", "chatty")
    assert (failed.otelTraceID, failed.otelSpanID) == (trace_hex, span_hex)  # type: ignore[attr-defined]
    assert failed.otelTraceSampled is True  # type: ignore[attr-defined]
    [user] = [r for r in capture.records if r.name == app_log.name]
    assert user.procman_event == ""  # type: ignore[attr-defined]
    assert (user.otelTraceID, user.otelSpanID) == (trace_hex, span_hex)  # type: ignore[attr-defined]
    started = capture.event("procman.child.started", "chatty")
    if otel_first:
        assert started.otelSpanID == span_hex  # type: ignore[attr-defined]
    # The root manager's shutdown is logged outside any span.
    [root_shutdown] = [
        r
        for r in capture.records
        if getattr(r, "procman_event", "") == "procman.shutdown.completed"
        and r.procman_supervisor == "root"  # type: ignore[attr-defined]
    ]
    assert root_shutdown.otelTraceID == "0"  # type: ignore[attr-defined]


def test_filter_keeps_existing_fields() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.otelTraceID = "abc"
    record.procman_event = "procman.child.failed"
    assert TraceContextFilter().filter(record)
    assert record.otelTraceID == "abc"
    assert record.procman_event == "procman.child.failed"


async def test_otel_logging_handler_exports_correlated_records(
    tracing: tuple[TracerProvider, InMemorySpanExporter], procman_debug: None
) -> None:
    provider, span_exporter = tracing
    log_exporter = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(logger_provider=logger_provider)
    for name in ("procman", app_log.name):
        logging.getLogger(name).addHandler(handler)
    try:
        # The CLI's order: the log observer before the tracing observer.
        await failing_tree([LoggingObserver(), OtelTracingObserver(provider)])
    finally:
        for name in ("procman", app_log.name):
            logging.getLogger(name).removeHandler(handler)
        logger_provider.shutdown()
    chatty = run_span(span_exporter, "chatty").get_span_context()
    assert chatty is not None
    exported = [d.log_record for d in log_exporter.get_finished_logs()]
    by_event: dict[tuple[str, str], list[object]] = {}
    for rec in exported:
        attrs = dict(rec.attributes or {})
        if "procman_event" in attrs:
            key = (str(attrs["procman_event"]), str(attrs.get("procman_child", "")))
            by_event.setdefault(key, []).append(rec)
    [failed] = by_event[("procman.child.failed", "chatty")]
    assert failed.trace_id == chatty.trace_id  # type: ignore[attr-defined]
    assert failed.span_id == chatty.span_id  # type: ignore[attr-defined]
    assert failed.severity_text == "ERROR"  # type: ignore[attr-defined]
    attrs = dict(failed.attributes or {})  # type: ignore[attr-defined]
    assert attrs["procman_supervisor"] == "root/nested"
    assert attrs["procman_error_type"] == "ValueError"
    assert attrs["exception.type"] == "ValueError"
    [user] = [r for r in exported if r.body == "working in a child"]
    assert user.trace_id == chatty.trace_id
    # Each event name appears as an attribute on its record.
    assert {name for name, _ in by_event} >= {
        "procman.child.starting",
        "procman.child.started",
        "procman.child.failed",
        "procman.shutdown.requested",
        "procman.shutdown.completed",
    }
