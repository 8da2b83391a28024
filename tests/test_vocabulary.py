"""One vocabulary: each concept named once, and the same values in every backend.

The scripted lifecycle below (start, ready, failure and restart, reload ok and
cancelled, stop timeout, shutdown) is driven through every backend at once:
stdlib logging, loguru, OpenTelemetry tracing (in-memory exporter),
PrometheusMetrics and OtelMetrics (in-memory reader). The values each backend
reports for each concept are then compared.
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from procman import vocabulary as v
from procman.events import (
    LifecycleEvent,
    ProcessCancelled,
    ProcessFailed,
    ProcessReady,
    ProcessRestarted,
    ProcessStarted,
    ProcessStarting,
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
from procman.observe import LoggingObserver, LoguruObserver, OtelTracingObserver
from procman.observer import Fanout, Observer
from procman_metrics import OtelMetrics, PrometheusMetrics

ROOT = Path(__file__).resolve().parent.parent


class DbGone(ConnectionError):
    """The failure of the scripted lifecycle."""


# -- the names -----------------------------------------------------------------------------
def test_the_vocabulary_imports_only_the_standard_library() -> None:
    code = (
        "import sys; before = set(sys.modules); import procman.vocabulary; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "print(sorted(n for n in new if n not in sys.stdlib_module_names))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "['procman']"


def test_each_name_is_chosen_once() -> None:
    by_key: dict[str, set[tuple[str | None, str | None, str | None]]] = {}
    for c in v.CONCEPTS:
        by_key.setdefault(c.key, set()).add((c.event_field, c.log_field, c.loguru_field))
    # one key: one event field, one stdlib field, one loguru field
    assert all(len(names) == 1 for names in by_key.values()), by_key
    attributes = [c.attribute for c in v.CONCEPTS if c.attribute]
    labels = [c.label for c in v.CONCEPTS if c.label]
    assert len(attributes) == len(set(attributes))
    assert len(labels) == len(set(labels))
    assert len({c.name for c in v.CONCEPTS}) == len(v.CONCEPTS)
    for c in v.CONCEPTS:
        if c.logged and not c.stdlib_field:
            assert c.log_field == f"procman_{c.loguru_field}"


def test_the_contract_names() -> None:
    # DESIGN.md: span names and attributes, Prometheus labels
    assert v.CHILD_RUN_SPAN == "procman.child.run"
    assert v.SHUTDOWN_SPAN == "procman.shutdown"
    assert v.RELOAD_SPAN == "procman.reload"
    assert v.SUPERVISOR.attribute == "procman.supervisor.name"
    assert v.CHILD.attribute == "procman.child.name"
    assert v.RESTART_COUNT.attribute == "procman.child.restart_count"
    assert v.OUTCOME.attribute == "procman.child.exit_reason"
    assert v.ERROR_TYPE.attribute == "error.type"
    assert (v.SUPERVISOR.label, v.CHILD.label, v.STATE.label) == ("supervisor", "child", "state")
    assert (v.OUTCOME.label, v.ERROR_TYPE.label, v.RELOAD_RESULT.label) == (
        "outcome",
        "error_type",
        "result",
    )
    assert v.OUTCOMES == ("ok", "error", "cancelled", "timeout")
    assert "cancelled" in v.RELOAD_RESULTS


def test_error_type_is_bare_for_metrics_and_logs_qualified_for_spans() -> None:
    assert v.error_type(DbGone()) == "DbGone" == v.error_type(DbGone)
    assert v.qualified_error_type(DbGone()) == f"{__name__}.DbGone"
    assert v.qualified_error_type(ValueError) == "ValueError"
    assert v.qualified_error_type(asyncio.CancelledError) == "asyncio.exceptions.CancelledError"
    exc = DbGone()
    assert ProcessFailed(
        supervisor="a", child="b", time=0.0, exception=exc
    ).error_type == v.error_type(exc)


@pytest.mark.parametrize(
    "source",
    ["procman/observe", "procman_metrics"],
)
def test_backends_do_not_spell_the_names_themselves(source: str) -> None:
    """Attribute names appear in procman/vocabulary.py only (metric names in names.py)."""
    attributes = {c.attribute for c in v.CONCEPTS if c.attribute}
    spans = {
        v.CHILD_RUN_SPAN,
        v.CHILD_START_SPAN,
        v.CHILD_EXIT_SPAN,
        v.SHUTDOWN_SPAN,
        v.RELOAD_SPAN,
        v.RESTART_SPAN,
        v.CHILD_RESTART_SPAN,
        v.READY_SPAN_EVENT,
        v.STOP_TIMEOUT_SPAN_EVENT,
    }
    for path in sorted((ROOT / source).glob("*.py")):
        code = path.read_text()
        literals = set(re.findall(r'"([a-z_.]+)"', code))
        assert not literals & (attributes | spans), (path.name, literals & (attributes | spans))


def test_the_readme_table_lists_every_concept() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| concept | event field"))
    rows: dict[str, str] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("| "):
            break
        rows[line.split("|")[1].strip().strip("`")] = line
    assert len(rows) == len(v.CONCEPTS)
    for c in v.CONCEPTS:
        row = rows.get(c.name)
        assert row is not None, f"README vocabulary table lacks {c.name!r}"
        for name in (c.event_field, c.log_field, c.loguru_field, c.label, c.attribute):
            if name is not None:
                assert f"`{name}`" in row, (c.name, name)


# -- one lifecycle through every backend ---------------------------------------------------
SUP = "app"


class ChildTask:
    """A long-lived task emitting a child's events in order, on request (a child's own task)."""

    def __init__(self, emit: Callable[[LifecycleEvent], None]) -> None:
        self.emit = emit
        self.queue: asyncio.Queue[tuple[LifecycleEvent, asyncio.Future[None]] | None] = (
            asyncio.Queue()
        )
        self.task = asyncio.ensure_future(self._work())

    async def _work(self) -> None:
        while (item := await self.queue.get()) is not None:
            event, done = item
            self.emit(event)
            done.set_result(None)

    async def __call__(self, event: LifecycleEvent) -> None:
        done = asyncio.get_running_loop().create_future()
        await self.queue.put((event, done))
        await done

    async def close(self) -> None:
        await self.queue.put(None)
        await self.task


async def scripted_lifecycle(observers: list[Observer]) -> None:
    fan = Fanout(observers)
    t = 100.0

    def emit(event: LifecycleEvent) -> None:  # what the manager does at every event site
        if fan.wants(type(event)):
            fan.emit(event)

    db, worker, stuck = ChildTask(emit), ChildTask(emit), ChildTask(emit)
    exc = DbGone("connection reset")
    for name in ("db", "worker", "stuck"):
        emit(ProcessStarting(supervisor=SUP, child=name, time=t))
    await db(ProcessStarted(supervisor=SUP, child="db", time=t))
    await worker(ProcessStarted(supervisor=SUP, child="worker", time=t))
    await stuck(ProcessStarted(supervisor=SUP, child="stuck", time=t))
    await db(ProcessReady(supervisor=SUP, child="db", time=t + 0.25, duration=0.25))
    # the worker fails; the manager's strategy restarts it
    await worker(
        ProcessFailed(supervisor=SUP, child="worker", time=t + 1, duration=1.0, exception=exc)
    )
    emit(
        RestartRequested(
            supervisor=SUP,
            time=t + 1,
            strategy="one_for_one",
            trigger="worker",
            children=("worker",),
            exception=exc,
        )
    )
    emit(
        RestartScheduled(
            supervisor=SUP,
            child="worker",
            time=t + 1,
            attempt=1,
            delay=0.5,
            exception=exc,
            strategy="one_for_one",
        )
    )
    emit(ProcessRestarted(supervisor=SUP, child="worker", time=t + 1.5, attempt=1))
    await worker(ProcessStarted(supervisor=SUP, child="worker", time=t + 1.5, restart_count=1))
    emit(
        RestartCompleted(
            supervisor=SUP,
            time=t + 1.5,
            strategy="one_for_one",
            trigger="worker",
            duration=0.5,
            start_time=t + 1,
        )
    )
    # reload ok, then a cancelled one
    emit(ReloadRequested(supervisor=SUP, time=t + 2, children=3))
    emit(ReloadCompleted(supervisor=SUP, time=t + 2.1, duration=0.1, start_time=t + 2))
    emit(ReloadRequested(supervisor=SUP, time=t + 3, children=3))
    emit(
        ReloadCompleted(
            supervisor=SUP, time=t + 3.1, duration=0.1, result="cancelled", start_time=t + 3
        )
    )
    # shutdown: db cancelled, worker returns, stuck outlives the grace period
    emit(ShutdownRequested(supervisor=SUP, time=t + 4, reason="requested", children=3))
    await db(ProcessCancelled(supervisor=SUP, child="db", time=t + 4.1, duration=4.1))
    await worker(
        ProcessStopped(supervisor=SUP, child="worker", time=t + 4.1, duration=2.6, restart_count=1)
    )
    emit(ProcessStopTimedOut(supervisor=SUP, child="stuck", time=t + 5, grace_period=1.0))
    await stuck(
        ProcessCancelled(supervisor=SUP, child="stuck", time=t + 5, duration=5.0, forced=True)
    )
    emit(ShutdownCompleted(supervisor=SUP, time=t + 5, duration=1.0, forced=1, start_time=t + 4))
    for task in (db, worker, stuck):
        await task.close()


@dataclass
class Reported:
    """What one backend reported, by concept: value -> count."""

    values: dict[str, Counter[Any]] = field(default_factory=dict)

    def add(self, concept: str, value: Any, n: int = 1) -> None:
        self.values.setdefault(concept, Counter())[value] += n

    def set_of(self, concept: str) -> set[Any]:
        return set(self.values.get(concept, {}))


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


LOGGED = [
    v.SUPERVISOR,
    v.CHILD,
    v.OUTCOME,
    v.ERROR_TYPE,
    v.STRATEGY,
    v.RESTART_COUNT,
    v.TRIGGER,
]


def from_logs(
    records: list[dict[str, Any]], field_of: Callable[[v.Concept], str | None]
) -> Reported:
    got = Reported()
    event_key = field_of(v.EVENT)
    assert event_key is not None
    for extra in records:
        event = extra[event_key]
        for concept in LOGGED:
            key = field_of(concept)
            if key is not None and key in extra:
                got.add(concept.key, extra[key])
        result_key = field_of(v.RELOAD_RESULT)
        if event == ReloadCompleted.name and result_key is not None:
            got.add("reload_result", extra[result_key])
        if event == ProcessReady.name:
            got.add("ready_duration", extra[field_of(v.DURATION)])
            got.add("ready_count", extra[field_of(v.SUPERVISOR)])
        if event == RestartRequested.name:
            got.add("restarts", extra[field_of(v.STRATEGY)])
        if event in (ProcessStopped.name, ProcessCancelled.name, ProcessFailed.name):
            got.add("exits", (extra[field_of(v.CHILD)], extra[field_of(v.OUTCOME)]))
        if event == ProcessStopTimedOut.name:
            got.add("stop_timeouts", extra[field_of(v.CHILD)])
    return got


def from_spans(spans: tuple[ReadableSpan, ...]) -> Reported:
    got = Reported()
    for span in spans:
        attrs = dict(span.attributes or {})
        for concept in LOGGED:
            if concept.attribute in attrs:
                got.add(concept.key, attrs[concept.attribute])
        if span.name == v.RELOAD_SPAN:
            got.add("reload_result", attrs[v.RELOAD_RESULT.attribute_key])
        if span.name == v.RESTART_SPAN:
            got.add("restarts", attrs[v.STRATEGY.attribute_key])
        if span.name == v.CHILD_RUN_SPAN:
            got.add("exits", (attrs[v.CHILD.attribute_key], attrs[v.OUTCOME.attribute_key]))
        for event in span.events:
            event_attrs = dict(event.attributes or {})
            if event.name == v.READY_SPAN_EVENT:
                got.add("ready_duration", event_attrs[v.DURATION.attribute_key])
                got.add("ready_count", attrs[v.SUPERVISOR.attribute_key])
            if event.name == v.STOP_TIMEOUT_SPAN_EVENT and span.name == v.SHUTDOWN_SPAN:
                got.add("stop_timeouts", event_attrs[v.CHILD.attribute_key])
    return got


def from_prometheus(registry: CollectorRegistry) -> Reported:
    from prometheus_client import generate_latest

    got = Reported()
    labels = {c.label: c for c in v.CONCEPTS if c.label}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name.endswith("_created") or sample.value == 0:
                continue
            if family.name in ("procman_children", "procman_build_info"):
                continue
            if sample.name == "procman_child_ready_duration_seconds_count":
                got.add("ready_count", sample.labels["supervisor"], int(sample.value))
            if sample.name.endswith(("_bucket", "_count")):
                continue
            for label, value in sample.labels.items():
                got.add(labels[label].key, value)
            lab = sample.labels
            if family.name == "procman_reloads":
                got.add("reload_result", lab["result"], int(sample.value))
            if sample.name == "procman_child_ready_duration_seconds_sum":
                got.add("ready_duration", sample.value)
            if family.name == "procman_supervisor_restarts":
                got.add("restarts", lab["strategy"], int(sample.value))
            if family.name == "procman_child_exits":
                got.add("exits", (lab["child"], lab["outcome"]), int(sample.value))
            if family.name == "procman_child_stop_timeouts":
                got.add("stop_timeouts", lab["child"], int(sample.value))
    return got


def from_otel_metrics(reader: InMemoryMetricReader) -> Reported:
    got = Reported()
    attributes = {c.attribute: c for c in v.CONCEPTS if c.attribute}
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name in ("procman.children", "procman.build.info"):
                    continue
                for point in metric.data.data_points:
                    attrs = dict(point.attributes)
                    value = getattr(point, "value", None)
                    if value == 0 or (value is None and point.count == 0):
                        continue
                    if metric.name != "procman.child.last_start_timestamp":
                        for key, val in attrs.items():
                            got.add(attributes[key].key, val)
                    if metric.name == "procman.reloads":
                        got.add("reload_result", attrs[v.RELOAD_RESULT.attribute_key], value)
                    if metric.name == "procman.child.ready.duration":
                        got.add("ready_duration", point.sum)
                        got.add("ready_count", attrs[v.SUPERVISOR.attribute_key], point.count)
                    if metric.name == "procman.supervisor.restarts":
                        got.add("restarts", attrs[v.STRATEGY.attribute_key], value)
                    if metric.name == "procman.child.exits":
                        key = (attrs[v.CHILD.attribute_key], attrs[v.OUTCOME.attribute_key])
                        got.add("exits", key, value)
                    if metric.name == "procman.child.stop_timeouts":
                        got.add("stop_timeouts", attrs[v.CHILD.attribute_key], value)
    return got


@pytest.fixture
def loguru_records() -> Iterator[list[dict[str, Any]]]:
    records: list[dict[str, Any]] = []
    hid = logger.add(lambda m: records.append(m.record["extra"]), level="DEBUG")
    logger.enable("procman")
    try:
        yield records
    finally:
        logger.remove(hid)


async def test_one_lifecycle_gives_the_same_values_in_every_backend(
    loguru_records: list[dict[str, Any]],
) -> None:
    std_logger = logging.getLogger("procman.test_vocabulary")
    std_logger.setLevel(logging.DEBUG)
    std_logger.propagate = False
    handler = ListHandler()
    std_logger.addHandler(handler)
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = CollectorRegistry()
    reader = InMemoryMetricReader()
    tracing = OtelTracingObserver(tracer_provider)
    observers: list[Observer] = [
        tracing,
        LoggingObserver(std_logger),
        LoguruObserver(),
        PrometheusMetrics(registry),
        OtelMetrics(MeterProvider(metric_readers=[reader])),
    ]
    try:
        await scripted_lifecycle(observers)
    finally:
        std_logger.removeHandler(handler)
    assert tracing.open_spans == 0

    backends = {
        "logging": from_logs([vars(r) for r in handler.records], lambda c: c.log_field),
        "loguru": from_logs(loguru_records, lambda c: c.loguru_field),
        "otel tracing": from_spans(exporter.get_finished_spans()),
        "prometheus": from_prometheus(registry),
        "otel metrics": from_otel_metrics(reader),
    }
    expected = {
        v.SUPERVISOR.key: {SUP},
        v.CHILD.key: {"db", "worker", "stuck"},
        v.OUTCOME.key: {"ok", "error", "cancelled", "timeout"},
        "reload_result": {"ok", "cancelled"},
        "restarts": {"one_for_one"},
        "ready_duration": {0.25},
        "stop_timeouts": {"stuck"},
        "exits": {
            ("worker", "error"),
            ("worker", "ok"),
            ("db", "cancelled"),
            ("stuck", "timeout"),
        },
    }
    for backend, got in backends.items():
        for concept, values in expected.items():
            assert got.set_of(concept) == values, (backend, concept, got.values.get(concept))
        # counts agree too: one exit per run, one restart decision, two reloads
        assert got.values["exits"] == Counter(dict.fromkeys(expected["exits"], 1)), backend
        assert got.values["restarts"] == Counter({"one_for_one": 1}), backend
        assert got.values["reload_result"] == Counter({"ok": 1, "cancelled": 1}), backend
        assert got.values["ready_count"] == Counter({SUP: 1}), backend
    # error.type: the bare class name everywhere but on spans, where it is qualified
    for backend in ("logging", "loguru", "prometheus", "otel metrics"):
        assert backends[backend].set_of(v.ERROR_TYPE.key) == {"DbGone"}, backend
    assert backends["otel tracing"].set_of(v.ERROR_TYPE.key) == {f"{__name__}.DbGone"}
    # the strategy: logs (request, scheduled, completed), metrics and spans
    for backend, got in backends.items():
        assert got.set_of(v.STRATEGY.key) == {"one_for_one"}, backend
    # restart counts: logs and spans carry them
    for backend in ("logging", "loguru", "otel tracing"):
        assert backends[backend].set_of(v.RESTART_COUNT.key) == {0, 1}, backend
        assert backends[backend].set_of(v.TRIGGER.key) == {"worker"}, backend


# keep the type checker honest about the helper signature
_: Callable[[list[Observer]], Awaitable[None]] = scripted_lifecycle


# -- the same through a real tree (the manager emits the policy events) ----------------------
async def test_a_real_policy_tree_through_every_backend(
    loguru_records: list[dict[str, Any]],
) -> None:
    from procman import ProcessManagerBuilder, RuntimeContext, Strategy, runnable
    from procman.builtin import RestartBackoff

    runs = {"db": 0}

    async def db(ctx: RuntimeContext) -> None:
        runs["db"] += 1
        await asyncio.sleep(0.01)
        ctx.ready()
        if runs["db"] == 1:
            raise DbGone("lost")
        await ctx.tick(asyncio.sleep(3600))

    async def consumer(ctx: RuntimeContext) -> None:
        ctx.ready()
        await ctx.tick(asyncio.sleep(3600))

    std_logger = logging.getLogger("procman.test_vocabulary.real")
    std_logger.setLevel(logging.DEBUG)
    std_logger.propagate = False
    handler = ListHandler()
    std_logger.addHandler(handler)
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = CollectorRegistry()
    reader = InMemoryMetricReader()
    tracing = OtelTracingObserver(tracer_provider)
    prometheus = PrometheusMetrics(registry)
    otel_metrics = OtelMetrics(MeterProvider(metric_readers=[reader]))
    builder = (
        ProcessManagerBuilder()
        .name("app")
        .strategy(Strategy.ONE_FOR_ALL)
        .intensity(max_restarts=3, within=60)
        .backoff(RestartBackoff(initial=0.01, max=0.01))
    )
    for obs in (tracing, LoggingObserver(std_logger), LoguruObserver(), prometheus, otel_metrics):
        builder = builder.observer(obs)
    root = (
        builder.pre_insert(runnable(db, name="db"), wait_ready=True)
        .pre_insert(runnable(consumer, name="consumer"), wait_ready=True)
        .build()
    )
    task = asyncio.ensure_future(root.process_start())
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while not (runs["db"] == 2 and root.snapshot().ready):
            assert asyncio.get_running_loop().time() < deadline, root.snapshot()
            await asyncio.sleep(0.01)
        # attached, not tracked: the root was learnt at its start
        assert prometheus.roots.managers() == [root] == otel_metrics.roots.managers()
        await root.process_handle().shutdown()
        await asyncio.wait_for(task, 10)
    finally:
        std_logger.removeHandler(handler)
    assert tracing.open_spans == 0

    backends = {
        "logging": from_logs([vars(r) for r in handler.records], lambda c: c.log_field),
        "loguru": from_logs(loguru_records, lambda c: c.loguru_field),
        "otel tracing": from_spans(exporter.get_finished_spans()),
        "prometheus": from_prometheus(registry),
        "otel metrics": from_otel_metrics(reader),
    }
    for backend, got in backends.items():
        assert got.values["restarts"] == Counter({"one_for_all": 1}), backend
        assert got.set_of(v.SUPERVISOR.key) == {"app"}, backend
        assert got.set_of(v.CHILD.key) >= {"db", "consumer"}, backend
        assert ("db", "error") in got.set_of("exits"), backend
        # two children ready, twice each (the first runs and the restarted ones)
        assert got.values["ready_count"] == Counter({"app": 4}), backend
    for backend in ("logging", "loguru", "prometheus", "otel metrics"):
        assert backends[backend].set_of(v.ERROR_TYPE.key) == {"DbGone"}, backend
    assert backends["otel tracing"].set_of(v.ERROR_TYPE.key) == {f"{__name__}.DbGone"}
    (decision,) = [s for s in exporter.get_finished_spans() if s.name == v.RESTART_SPAN]
    assert dict(decision.attributes or {})[v.RESTART_CHILDREN.attribute_key] == 2
