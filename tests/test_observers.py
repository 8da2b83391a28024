"""Event model, fan-out containment and the stdlib logging backend."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest
from helpers import Recorder, Worker

from procman import Fanout, ProcessManager, ProcessManagerBuilder
from procman.builtin import (
    IdleProcess,
    RestartBackoff,
    RestartIntensityExceeded,
    RestartSupervisor,
)
from procman.events import (
    TERMINAL_EVENTS,
    LifecycleEvent,
    ProcessFailed,
    ProcessStarted,
    ProcessStarting,
)
from procman.observe import LoggingObserver


def test_events_are_immutable() -> None:
    ev = ProcessStarted(supervisor="root", child="w", time=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.child = "x"  # type: ignore[misc]
    assert ev.path == "root/w" and ev.name == "procman.child.started"


class Exploding:
    def __init__(self) -> None:
        self.calls = 0

    def on_event(self, event: LifecycleEvent) -> None:
        self.calls += 1
        raise RuntimeError("observer bug")


async def test_observer_that_raises_never_breaks_supervision(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad, rec = Exploding(), Recorder()
    m = ProcessManager("root", observers=[bad, rec])
    m.insert(Worker("w", exit_after=2))
    with caplog.at_level(logging.ERROR, logger="procman"):
        assert await asyncio.wait_for(m.process_start(), 5) is None
    assert bad.calls >= 3
    assert rec.names("w") == [
        "procman.child.starting",
        "procman.child.started",
        "procman.child.stopped",
    ]
    reports = [r for r in caplog.records if "observer" in r.getMessage()]
    assert len(reports) == 1  # reported once
    assert m.fanout.errors == bad.calls


def test_fanout_dedupes_and_filters() -> None:
    class Picky:
        def __init__(self) -> None:
            self.got: list[LifecycleEvent] = []

        def wants(self, t: type[LifecycleEvent]) -> bool:
            return t is ProcessFailed

        def on_event(self, event: LifecycleEvent) -> None:
            self.got.append(event)

    p = Picky()
    fan = Fanout([p, p])
    assert fan.observers == (p,)
    assert fan.wants(ProcessFailed) and not fan.wants(ProcessStarted)
    assert not Fanout([])


async def test_no_observer_means_no_events_built(monkeypatch: pytest.MonkeyPatch) -> None:
    built = []
    original = ProcessStarting.__init__

    def spy(self: ProcessStarting, **kw: object) -> None:
        built.append(1)
        original(self, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(ProcessStarting, "__init__", spy)
    m = ProcessManagerBuilder().no_observers().pre_insert(Worker(exit_after=1)).build()
    await m.process_start()
    assert built == []


async def test_default_logging_observer_skips_disabled_levels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logging.getLogger("procman").setLevel(logging.WARNING)
    try:
        built = []
        original = ProcessStarting.__init__

        def spy(self: ProcessStarting, **kw: object) -> None:
            built.append(1)
            original(self, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(ProcessStarting, "__init__", spy)
        m = ProcessManager("root")  # default observer: LoggingObserver
        m.insert(Worker(exit_after=1))
        await m.process_start()
        assert isinstance(m.fanout.observers[0], LoggingObserver)
        assert built == []
    finally:
        logging.getLogger("procman").setLevel(logging.NOTSET)


def test_library_logger_has_null_handler() -> None:
    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("procman").handlers)


async def test_logging_levels_and_structured_fields(caplog: pytest.LogCaptureFixture) -> None:
    err = ValueError("kaput")
    child = Worker("flaky", fail_after=1, period=0.001, exc=err)
    sup = RestartSupervisor(child, RestartBackoff(initial=0.01, max=0.01)).intensity(1)
    m = ProcessManager("root")
    m.insert(sup).insert(IdleProcess("idle"))
    with caplog.at_level(logging.DEBUG, logger="procman"), pytest.raises(RestartIntensityExceeded):
        await asyncio.wait_for(m.process_start(), 5)
    by_event: dict[str, logging.LogRecord] = {}
    for r in caplog.records:
        by_event.setdefault(getattr(r, "procman_event", ""), r)
    failed = by_event["procman.child.failed"]
    assert failed.levelno == logging.ERROR
    assert failed.exc_info is not None and failed.exc_info[1] is err
    assert failed.procman_supervisor == "root"  # type: ignore[attr-defined]
    assert failed.procman_child == "flaky"  # type: ignore[attr-defined]
    assert failed.procman_error_type == "ValueError"  # type: ignore[attr-defined]
    assert by_event["procman.child.restart_scheduled"].levelno == logging.WARNING
    assert by_event["procman.child.restart_scheduled"].procman_attempt == 1  # type: ignore[attr-defined]
    assert by_event["procman.child.started"].levelno == logging.DEBUG
    assert by_event["procman.shutdown.requested"].levelno == logging.INFO
    assert by_event["procman.shutdown.completed"].levelno == logging.INFO


async def test_every_run_has_exactly_one_terminal_event() -> None:
    rec = Recorder()
    m = ProcessManager("root", observers=[rec], shutdown_grace_period=0.05)
    m.insert(Worker("ok", exit_after=1))
    m.insert(Worker("stuck", ignore_shutdown=True))
    m.insert(RestartSupervisor(Worker("flaky", fail_after=1), RestartBackoff(0.01, 0.01)))
    task = asyncio.create_task(m.process_start())
    await asyncio.sleep(0.1)
    await m.process_handle().shutdown()
    await task
    for name in ("ok", "stuck", "flaky"):
        names = rec.names(name)
        starts = names.count("procman.child.started")
        ends = sum(names.count(t.name) for t in TERMINAL_EVENTS)
        assert starts == ends >= 1, (name, names)


# -- policy events (issue 11) ------------------------------------------------------------
def _policy_events() -> list[LifecycleEvent]:
    from procman.events import ProcessReady, RestartCompleted, RestartRequested

    exc = ConnectionError("reset")
    return [
        ProcessReady(supervisor="app", child="db", time=1.0, duration=0.25, restart_count=2),
        RestartRequested(
            supervisor="app",
            time=2.0,
            strategy="one_for_all",
            trigger="db",
            children=("db", "consumer"),
            exception=exc,
        ),
        RestartCompleted(
            supervisor="app", time=2.5, strategy="one_for_all", trigger="db", duration=0.5
        ),
        RestartCompleted(
            supervisor="app",
            time=3.0,
            strategy="rest_for_one",
            trigger="db",
            duration=0.1,
            result="cancelled",
        ),
    ]


def test_policy_events_levels_messages_and_fields(caplog: pytest.LogCaptureFixture) -> None:
    observer = LoggingObserver()
    with caplog.at_level(logging.DEBUG, logger="procman"):
        for event in _policy_events():
            assert observer.wants(type(event))
            observer.on_event(event)
    ready, requested, completed, cancelled = caplog.records
    assert ready.levelno == logging.INFO
    assert ready.getMessage() == "process app/db ready after 0.250s"
    assert (ready.procman_event, ready.procman_child, ready.procman_duration) == (  # type: ignore[attr-defined]
        "procman.child.ready",
        "db",
        0.25,
    )
    assert ready.procman_restart_count == 2  # type: ignore[attr-defined]
    assert requested.levelno == logging.WARNING
    msg = requested.getMessage()
    assert "one_for_all" in msg and "db" in msg and "consumer" in msg and "ConnectionError" in msg
    assert requested.procman_strategy == "one_for_all"  # type: ignore[attr-defined]
    assert requested.procman_trigger == "db"  # type: ignore[attr-defined]
    assert requested.procman_children == 2  # type: ignore[attr-defined]
    assert requested.procman_error_type == "ConnectionError"  # type: ignore[attr-defined]
    assert not hasattr(requested, "procman_child")  # a manager event names no child
    assert completed.levelno == logging.INFO
    assert completed.procman_result == "ok"  # type: ignore[attr-defined]
    assert "done in 0.500s" in completed.getMessage()
    assert cancelled.procman_result == "cancelled"  # type: ignore[attr-defined]
    assert "cancelled" in cancelled.getMessage()


def test_restart_scheduled_names_the_strategy(caplog: pytest.LogCaptureFixture) -> None:
    from procman.events import RestartScheduled

    observer = LoggingObserver()
    with caplog.at_level(logging.DEBUG, logger="procman"):
        observer.on_event(
            RestartScheduled(
                supervisor="app",
                child="db",
                time=1.0,
                attempt=1,
                delay=0.1,
                exception=KeyError("k"),
                strategy="one_for_one",
            )
        )
        observer.on_event(
            RestartScheduled(supervisor="app", child="w", time=1.0, attempt=1, delay=0.1)
        )
    with_strategy, without = caplog.records
    assert with_strategy.procman_strategy == "one_for_one"  # type: ignore[attr-defined]
    assert with_strategy.procman_error_type == "KeyError"  # type: ignore[attr-defined]
    assert not hasattr(without, "procman_strategy")
    assert not hasattr(without, "procman_error_type")
