"""OtelMetrics: the same lifecycles read back through an InMemoryMetricReader."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from helpers import waiting_worker
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from procman import (
    ChildState,
    ProcessControlHandler,
    ProcessManager,
    Runnable,
    RuntimeContext,
    __version__,
    runnable,
)
from procman.builtin import IdleProcess, RestartBackoff, RestartSupervisor
from procman.events import ProcessFailed
from procman_metrics import OtelMetrics
from procman_metrics.buckets import SHUTDOWN_BUCKETS
from procman_metrics.names import OTEL_NAMES

SUP = "procman.supervisor.name"
CHILD = "procman.child.name"

Points = dict[str, list[Any]]


def read(reader: InMemoryMetricReader) -> tuple[Points, dict[str, Any]]:
    """Data points by instrument name, and the metric objects themselves."""
    points: Points = {}
    metrics: dict[str, Any] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            assert sm.scope.name == "procman"
            for metric in sm.metrics:
                metrics[metric.name] = metric
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    return points, metrics


def point(points: Points, name: str, **attrs: str) -> Any:
    matches = [p for p in points.get(name, []) if dict(p.attributes) == attrs]
    assert len(matches) == 1, (name, attrs, [dict(p.attributes) for p in points.get(name, [])])
    return matches[0]


def new_metrics() -> tuple[OtelMetrics, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    return OtelMetrics(MeterProvider(metric_readers=[reader])), reader


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


worker = waiting_worker


class Stubborn(Runnable):
    class _Handle(ProcessControlHandler):
        async def shutdown(self) -> None:
            pass

        async def reload(self) -> None:
            raise RuntimeError("cannot reload")

    async def process_start(self) -> None:
        await asyncio.sleep(3600)

    def process_handle(self) -> ProcessControlHandler:
        return self._Handle()

    def process_name(self) -> str:
        return "stubborn"


async def test_lifecycle_counters_histogram_and_gauges() -> None:
    metrics, reader = new_metrics()
    attempts = 0

    async def flaky(ctx: RuntimeContext) -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 2:
            raise ConnectionError("boom")
        await ctx.tick(asyncio.sleep(3600))

    root = ProcessManager("root", observers=[metrics], shutdown_grace_period=0.05)
    inner = ProcessManager("inner").insert(worker("a"))
    root.insert(inner).insert(Stubborn())
    root.insert(RestartSupervisor(runnable(flaky, name="flaky"), RestartBackoff(0.001, 0.001)))
    metrics.track(root)
    t0 = time.time()
    task = asyncio.create_task(root.process_start())
    await until(lambda: root.snapshot().ready and attempts == 3)
    points, instruments = read(reader)
    # children by state, observed from the tree: every state for every supervisor
    for sup, running in (("root", 3), ("root/inner", 1)):
        for state in ChildState:
            expected = running if state is ChildState.RUNNING else 0
            got = point(
                points, "procman.children", **{SUP: sup, "procman.child.state": state.value}
            )
            assert got.value == expected, (sup, state)
    assert not instruments["procman.children"].data.is_monotonic
    await root.process_handle().reload()  # Stubborn's handler raises: result error
    await root.process_handle().shutdown()
    await asyncio.wait_for(task, 10)
    points, instruments = read(reader)
    flaky_attrs = {SUP: "root", CHILD: "flaky"}
    assert point(points, "procman.child.starts", **flaky_attrs).value == 3
    assert point(points, "procman.child.restarts", **flaky_attrs).value == 2
    failures = point(
        points, "procman.child.failures", **flaky_attrs, **{"error.type": "ConnectionError"}
    )
    assert failures.value == 2
    exits = {
        (dict(p.attributes)[CHILD], dict(p.attributes)["procman.child.exit_reason"]): p.value
        for p in points["procman.child.exits"]
    }
    assert exits == {
        ("flaky", "error"): 2,
        ("flaky", "ok"): 1,  # its last run took the shutdown message and returned
        ("a", "ok"): 1,
        ("inner", "ok"): 1,
        ("stubborn", "timeout"): 1,
    }
    assert (
        point(points, "procman.child.stop_timeouts", **{SUP: "root", CHILD: "stubborn"}).value == 1
    )
    assert (
        point(points, "procman.reloads", **{SUP: "root", "procman.reload.result": "error"}).value
        == 1
    )
    shutdown = point(points, "procman.shutdown.duration", **{SUP: "root"})
    assert shutdown.count == 1 and 0.05 <= shutdown.sum < 5
    assert tuple(shutdown.explicit_bounds) == SHUTDOWN_BUCKETS
    assert instruments["procman.shutdown.duration"].unit == "s"
    assert point(points, "procman.shutdown.duration", **{SUP: "root/inner"}).count == 1
    started = point(points, "procman.child.last_start_timestamp", **{SUP: "root/inner", CHILD: "a"})
    assert t0 <= started.value <= time.time()
    assert point(points, "procman.build.info", **{"procman.version": __version__}).value == 1


async def test_collection_from_a_reader_thread_and_weak_tracking() -> None:
    metrics, reader = new_metrics()
    root = ProcessManager("root", observers=[metrics]).insert(IdleProcess())
    metrics.track(root)
    task = asyncio.create_task(root.process_start())
    await until(lambda: root.snapshot().ready)
    points, _ = await asyncio.to_thread(read, reader)  # callbacks run off the loop thread
    assert (
        point(points, "procman.children", **{SUP: "root", "procman.child.state": "running"}).value
        == 1
    )
    assert metrics.healthy() and metrics.ready()
    await root.process_handle().shutdown()
    await asyncio.wait_for(task, 5)
    assert not metrics.healthy()
    metrics.untrack(root)
    points, _ = read(reader)
    assert not points.get("procman.children")


async def test_exemplars_carry_the_active_trace() -> None:
    metrics, reader = new_metrics()
    tracer = TracerProvider().get_tracer("test")

    async def bad(ctx: RuntimeContext) -> None:
        raise ValueError("x")

    root = ProcessManager("root", observers=[metrics]).insert(runnable(bad, name="bad"))
    with tracer.start_as_current_span("deploy") as span:
        trace_id = span.get_span_context().trace_id
        try:
            await root.process_start()
        except ValueError:
            pass
    points, _ = read(reader)
    failures = point(
        points, "procman.child.failures", **{SUP: "root", CHILD: "bad", "error.type": "ValueError"}
    )
    assert [e.trace_id for e in failures.exemplars] == [trace_id]


def test_names_map_every_prometheus_metric() -> None:
    assert len(OTEL_NAMES) == 12
    assert all(name.startswith("procman.") for name in OTEL_NAMES.values())
    assert len(set(OTEL_NAMES.values())) == 12


async def test_attached_as_an_observer_children_are_observed_without_track() -> None:
    metrics, reader = new_metrics()
    root = ProcessManager("root", observers=[metrics]).insert(IdleProcess())
    task = asyncio.create_task(root.process_start())
    await until(lambda: root.snapshot().ready)
    assert metrics.roots.managers() == [root]
    points, _ = read(reader)
    assert (
        point(points, "procman.children", **{SUP: "root", "procman.child.state": "running"}).value
        == 1
    )
    assert metrics.healthy()
    await root.process_handle().shutdown()
    await asyncio.wait_for(task, 5)


def test_on_tree_start_called_directly_tracks_the_root() -> None:
    metrics, _ = new_metrics()
    root = ProcessManager("root", observers=[])
    metrics.on_tree_start(root)
    metrics.on_tree_start(root)
    assert metrics.roots.managers() == [root]


def test_policy_metrics_and_the_shared_vocabulary() -> None:
    from procman.events import ProcessReady, ReloadCompleted, RestartRequested

    metrics, reader = new_metrics()
    metrics.on_event(ProcessReady(supervisor="app", child="db", time=1.0, duration=0.25))
    metrics.on_event(ProcessReady(supervisor="app", child="c", time=1.0, duration=0.75))
    for strategy in ("one_for_all", "one_for_all", "rest_for_one"):
        metrics.on_event(
            RestartRequested(supervisor="app", time=2.0, strategy=strategy, trigger="db")
        )
    metrics.on_event(ReloadCompleted(supervisor="app", time=3.0, duration=0.1, result="cancelled"))
    metrics.on_event(
        ProcessFailed(
            supervisor="app", child="db", time=4.0, exception=ConnectionResetError("reset")
        )
    )
    points, instruments = read(reader)
    ready = point(points, "procman.child.ready.duration", **{SUP: "app"})
    assert (ready.count, ready.sum) == (2, 1.0)
    assert instruments["procman.child.ready.duration"].unit == "s"
    strategy = "procman.restart.strategy"
    assert (
        point(points, "procman.supervisor.restarts", **{SUP: "app", strategy: "one_for_all"}).value
        == 2
    )
    assert (
        point(points, "procman.supervisor.restarts", **{SUP: "app", strategy: "rest_for_one"}).value
        == 1
    )
    # the same result value as PrometheusMetrics and the event
    reload = point(points, "procman.reloads", **{SUP: "app", "procman.reload.result": "cancelled"})
    assert reload.value == 1
    # the outcome attribute is the span's, error.type the bare class name (metrics rule)
    exits = point(
        points,
        "procman.child.exits",
        **{SUP: "app", CHILD: "db", "procman.child.exit_reason": "error"},
    )
    assert exits.value == 1
    failure = point(
        points,
        "procman.child.failures",
        **{SUP: "app", CHILD: "db", "error.type": "ConnectionResetError"},
    )
    assert failure.value == 1
