"""LoguruObserver: on once attached, structured fields, levels, trace ids, loguru filters."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import Worker, wait_until
from loguru import logger
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from procman import ProcessManager
from procman.builtin import RestartBackoff, RestartSupervisor
from procman.events import ProcessStarted, ProcessStarting
from procman.observe import LoguruObserver, OtelTracingObserver
from procman.observer import Observer


class Sink:
    """A loguru sink keeping the records."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def __call__(self, message: Any) -> None:
        self.records.append(message.record)

    def events(self, name: str, child: str | None = None) -> list[dict[str, Any]]:
        return [
            r
            for r in self.records
            if r["extra"].get("event") == name and child in (None, r["extra"].get("child"))
        ]


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    handler = logger.add(s, level="DEBUG", format="{message}")
    logger.enable("procman")
    try:
        yield s
    finally:
        logger.enable("procman")
        logger.remove(handler)


async def run_tree(observers: list[Observer], fail: bool = True, restarts: int = 0) -> None:
    root = ProcessManager("root", observers=observers)
    root.insert(Worker("a"))
    nested = ProcessManager("nested")
    nested.insert(Worker("b", fail_after=3, exc=KeyError("missing")) if fail else Worker("b"))
    root.insert(nested)
    flaky = RestartSupervisor(Worker("flaky", fail_after=1), RestartBackoff(initial=0.01, max=0.01))
    if restarts:
        root.insert(flaky)
    task = asyncio.ensure_future(root.process_start())
    if restarts:
        await wait_until(lambda: flaky.restart_count >= restarts)
    if not fail:
        await asyncio.sleep(0.05)
        await root.process_handle().shutdown()
    try:
        await asyncio.wait_for(task, 10)
    except KeyError:
        assert fail


async def test_fields_levels_and_exception(sink: Sink) -> None:
    await run_tree([LoguruObserver()])
    # b failed, and so did the run of the nested manager that re-raised b's error.
    assert [r["extra"]["child"] for r in sink.events("procman.child.failed")] == ["b", "nested"]
    [failed] = sink.events("procman.child.failed", "b")
    assert failed["level"].name == "ERROR"
    extra = failed["extra"]
    assert extra["supervisor"] == "root/nested"
    assert extra["child"] == "b"
    assert extra["outcome"] == "error"
    assert extra["error_type"] == "KeyError"
    assert extra["error"] == "KeyError: 'missing'"
    assert extra["duration"] > 0
    assert failed["exception"] is not None and isinstance(failed["exception"].value, KeyError)
    assert failed["message"].startswith("process root/nested/b failed")
    assert failed["name"].startswith("procman.")  # what logger.disable("procman") matches
    [started] = sink.events("procman.child.started")[:1]
    assert started["level"].name == "DEBUG"
    assert started["extra"]["restart_count"] == 0
    shutdown = sink.events("procman.shutdown.requested")
    assert {r["extra"]["supervisor"] for r in shutdown} == {"root", "root/nested"}
    assert all(r["level"].name == "INFO" for r in shutdown)
    assert {r["extra"]["reason"] for r in shutdown} >= {"failure"}
    # No span anywhere: no trace ids.
    assert all("trace_id" not in r["extra"] for r in sink.records)


async def test_restart_records_carry_attempt_delay_and_cause(sink: Sink) -> None:
    await run_tree([LoguruObserver()], fail=False, restarts=2)
    scheduled = sink.events("procman.child.restart_scheduled")
    assert len(scheduled) >= 2
    first = scheduled[0]
    assert first["level"].name == "WARNING"
    assert first["extra"]["attempt"] == 1
    assert first["extra"]["delay"] == pytest.approx(0.01)
    assert first["extra"]["error"] == "RuntimeError: flaky failed"
    restarted = sink.events("procman.child.restarted")
    assert restarted and restarted[0]["extra"]["attempt"] == 1


@pytest.mark.parametrize("otel_first", [True, False])
async def test_trace_ids_of_the_child_span(sink: Sink, otel_first: bool) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel = OtelTracingObserver(provider)
    observers: list[Observer] = [otel, LoguruObserver()]
    if not otel_first:
        observers.reverse()
    await run_tree(observers)
    [run_b] = [
        s
        for s in exporter.get_finished_spans()
        if s.name == "procman.child.run" and (s.attributes or {})["procman.child.name"] == "b"
    ]
    ctx = run_b.get_span_context()
    assert ctx is not None
    [failed] = sink.events("procman.child.failed", "b")
    # Whatever the observer order, the failure record carries the failed run's ids.
    assert failed["extra"]["trace_id"] == format(ctx.trace_id, "032x")
    assert failed["extra"]["span_id"] == format(ctx.span_id, "016x")
    started_b = sink.events("procman.child.started", "b")
    if otel_first:  # the documented order: starts are correlated too
        assert started_b[0]["extra"]["span_id"] == format(ctx.span_id, "016x")
    provider.shutdown()


async def test_disable_procman_silences_records() -> None:
    s = Sink()
    handler = logger.add(s, level="DEBUG", format="{message}")
    try:
        logger.disable("procman")
        await run_tree([LoguruObserver()])
        assert s.records == []
        logger.info("the application's own records still flow")
        assert len(s.records) == 1
    finally:
        logger.enable("procman")
        logger.remove(handler)


def test_records_below_every_handler_level_build_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """loguru filters before the patcher runs: no message, no fields for a dropped record."""
    import procman.observe.loguru as backend
    from procman.events import ProcessFailed, ShutdownRequested

    calls: list[str] = []
    real = backend.describe

    def counting(event: Any) -> Any:
        calls.append(event.name)
        return real(event)

    monkeypatch.setattr(backend, "describe", counting)
    s = Sink()
    logger.remove()  # the default stderr handler takes DEBUG
    hid = logger.add(s, level="INFO", format="{message}")
    try:
        observer = LoguruObserver()
        assert not observer.wants(ProcessStarted) and not observer.wants(ProcessStarting)
        assert observer.wants(ProcessFailed) and observer.wants(ShutdownRequested)
        # delivered anyway (another observer wanted them): loguru drops them before the patcher
        observer.on_event(ProcessStarted(supervisor="root", child="a", time=0.0))
        observer.on_event(ProcessStarting(supervisor="root", child="a", time=0.0))
        assert calls == [] and s.records == []
        observer.on_event(
            ShutdownRequested(supervisor="root", time=0.0, reason="requested", children=1)
        )
        assert calls == ["procman.shutdown.requested"]
        assert [r["extra"]["event"] for r in s.records] == ["procman.shutdown.requested"]
        assert "procman_lifecycle_event" not in s.records[0]["extra"]
    finally:
        logger.remove(hid)
        logger.add(sys.stderr)


def _run(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


SCRIPT = """
import asyncio, sys
from loguru import logger
logger.remove()
logger.add(sys.stdout, format="{extra[event]} {extra[supervisor]}", level="INFO")
{before}
from procman import ProcessManager
from procman.observe import LoguruObserver
{after}
async def main():
    root = ProcessManager("root", observers=[LoguruObserver()])
    from procman.builtin import IdleProcess
    root.insert(IdleProcess())
    t = asyncio.ensure_future(root.process_start())
    await root.wait_started()
    await root.process_handle().shutdown()
    await t
asyncio.run(main())
"""


def test_records_flow_once_attached_whatever_the_import_order() -> None:
    out = _run(SCRIPT.replace("{before}", "").replace("{after}", ""))
    assert "procman.shutdown.requested root" in out
    out = _run(SCRIPT.replace("{before}", 'logger.enable("procman")').replace("{after}", ""))
    assert "procman.shutdown.completed root" in out


def test_disable_after_import_silences() -> None:
    assert (
        _run(SCRIPT.replace("{before}", "").replace("{after}", 'logger.disable("procman")')) == ""
    )


def test_policy_events(sink: Sink) -> None:
    from procman.events import ProcessReady, RestartCompleted, RestartRequested

    observer = LoguruObserver()
    observer.on_event(ProcessReady(supervisor="app", child="db", time=1.0, duration=0.25))
    observer.on_event(
        RestartRequested(
            supervisor="app",
            time=2.0,
            strategy="rest_for_one",
            trigger="db",
            children=("db", "consumer"),
            exception=ConnectionError("reset"),
        )
    )
    observer.on_event(
        RestartCompleted(
            supervisor="app", time=2.5, strategy="rest_for_one", trigger="db", duration=0.5
        )
    )
    ready, requested, completed = sink.records
    assert ready["level"].name == "INFO"
    assert ready["message"] == "process app/db ready after 0.250s"
    assert ready["extra"]["event"] == "procman.child.ready"
    assert ready["extra"]["duration"] == 0.25
    assert requested["level"].name == "WARNING"
    extra = requested["extra"]
    assert (extra["strategy"], extra["trigger"], extra["children"]) == ("rest_for_one", "db", 2)
    assert (extra["error_type"], extra["error"]) == ("ConnectionError", "ConnectionError: reset")
    assert "child" not in extra
    assert completed["level"].name == "INFO"
    assert completed["extra"]["result"] == "ok"


def test_wants_probes_loguru_and_the_probe_never_reaches_a_handler() -> None:
    """The probe relies on loguru running patchers before handlers and not catching them.

    If this fails, loguru changed how patchers run: procman's LoguruObserver.wants
    (procman/observe/loguru.py) must be revisited.
    """
    from procman.events import ProcessFailed

    s = Sink()
    logger.remove()
    try:
        observer = LoguruObserver()
        assert not observer.wants(ProcessFailed)  # no handler at all
        hid = logger.add(s, level="WARNING", format="{message}")
        assert not observer.wants(ProcessFailed)  # cached for a second
        observer.refresh()
        assert observer.wants(ProcessFailed) and not observer.wants(ProcessStarted)
        logger.disable("procman")
        observer.refresh()
        assert not observer.wants(ProcessFailed)
        logger.enable("procman")
        observer.refresh()
        assert observer.wants(ProcessFailed)
        assert s.records == []  # probing never emitted a record
        logger.remove(hid)
    finally:
        logger.enable("procman")
        logger.add(sys.stderr)
