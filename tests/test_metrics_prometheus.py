"""PrometheusMetrics: scripted lifecycles, then the parsed exposition is checked value by value."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from helpers import waiting_worker
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from procman import (
    ChildState,
    ManagerPhase,
    ProcessControlHandler,
    ProcessManager,
    Runnable,
    RuntimeContext,
    __version__,
    runnable,
)
from procman.builtin import IdleProcess, RestartBackoff, RestartSupervisor
from procman.events import ProcessStarting, RestartScheduled, ShutdownRequested
from procman_metrics import PrometheusMetrics
from procman_metrics.buckets import SHUTDOWN_BUCKETS
from procman_metrics.tracking import snapshot_of

STATES = [s.value for s in ChildState]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# -- helpers --------------------------------------------------------------------------
def scrape(registry: CollectorRegistry) -> Samples:
    """Every sample of the text exposition, parsed back."""
    text = generate_latest(registry).decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def new_metrics(**kwargs: Any) -> tuple[PrometheusMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return PrometheusMetrics(registry, **kwargs), registry


async def run(manager: ProcessManager, timeout: float = 10.0) -> BaseException | None:
    try:
        await asyncio.wait_for(manager.process_start(), timeout)
    except Exception as exc:
        return exc
    return None


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def returns() -> Runnable:
    async def ok(ctx: RuntimeContext) -> None:
        await asyncio.sleep(0)

    return runnable(ok, name="ok-child")


def fails(exc: BaseException, name: str = "bad-child") -> Runnable:
    async def bad(ctx: RuntimeContext) -> None:
        await asyncio.sleep(0)
        raise exc

    return runnable(bad, name=name)


worker = waiting_worker


class Stubborn(Runnable):
    """Ignores shutdown requests; only cancellation stops it."""

    class _Handle(ProcessControlHandler):
        async def shutdown(self) -> None:
            pass

        async def reload(self) -> None:
            pass

    def __init__(self, name: str = "stubborn") -> None:
        self._name = name
        self.started = asyncio.Event()

    async def process_start(self) -> None:
        self.started.set()
        await asyncio.sleep(3600)

    def process_handle(self) -> ProcessControlHandler:
        return self._Handle()

    def process_name(self) -> str:
        return self._name


class Reloadable(Runnable):
    """Its reload handler runs ``on_reload`` (which may raise or hang)."""

    def __init__(self, name: str, on_reload: Callable[[], Awaitable[None]]) -> None:
        self._name = name
        self._on_reload = on_reload
        self._idle = IdleProcess(name)
        outer = self

        class Handle(ProcessControlHandler):
            async def shutdown(self) -> None:
                await outer._idle.process_handle().shutdown()

            async def reload(self) -> None:
                await outer._on_reload()

        self._handle = Handle()

    async def process_start(self) -> None:
        await self._idle.process_start()

    def process_handle(self) -> ProcessControlHandler:
        return self._handle

    def process_name(self) -> str:
        return self._name


# -- lifecycles --------------------------------------------------------------------------
async def test_successful_child_counts_one_start_and_one_ok_exit() -> None:
    metrics, registry = new_metrics()
    root = ProcessManager("root", observers=[metrics])
    root.insert(returns())
    metrics.track(root)
    t0 = time.time()
    assert await run(root) is None
    t1 = time.time()
    s = scrape(registry)
    child = {"supervisor": "root", "child": "ok-child"}
    assert value(s, "procman_child_starts_total", **child) == 1
    # exits are created when they happen; rare events (restarts, stop timeouts) exist at 0
    assert series(s, "procman_child_exits_total") == {
        frozenset({**child, "outcome": "ok"}.items()): 1
    }
    assert series(s, "procman_child_failures_total") == {}
    assert value(s, "procman_child_restarts_total", **child) == 0
    assert value(s, "procman_child_stop_timeouts_total", **child) == 0
    started = value(s, "procman_child_last_start_timestamp_seconds", **child)
    assert started is not None and t0 <= started <= t1
    # no shutdown was requested (the child ended by itself): the histogram exists, empty
    assert value(s, "procman_shutdown_duration_seconds_count", supervisor="root") == 0
    for result in ("ok", "error", "timeout"):
        assert value(s, "procman_reloads_total", supervisor="root", result=result) == 0
    assert value(s, "procman_build_info", version=__version__) == 1
    # the root ended with auto_cleanup: it is still reported, every state zero
    for state in STATES:
        assert value(s, "procman_children", supervisor="root", state=state) == 0


async def test_failing_child_counts_error_type_not_message() -> None:
    metrics, registry = new_metrics()
    root = ProcessManager("root", observers=[metrics], shutdown_grace_period=5)
    root.insert(fails(KeyError("secret-user-42"))).insert(IdleProcess("idle"))
    exc = await run(root)
    assert isinstance(exc, KeyError)
    s = scrape(registry)
    bad = {"supervisor": "root", "child": "bad-child"}
    idle = {"supervisor": "root", "child": "idle"}
    assert series(s, "procman_child_failures_total") == {
        frozenset({**bad, "error_type": "KeyError"}.items()): 1
    }
    assert value(s, "procman_child_exits_total", **bad, outcome="error") == 1
    assert value(s, "procman_child_exits_total", **bad, outcome="ok") is None
    # the sibling was shut down gracefully: it returned, so its outcome is ok
    assert value(s, "procman_child_exits_total", **idle, outcome="ok") == 1
    assert value(s, "procman_child_starts_total", **idle) == 1
    # the failure triggered one shutdown, observed in the histogram
    assert value(s, "procman_shutdown_duration_seconds_count", supervisor="root") == 1
    total = value(s, "procman_shutdown_duration_seconds_sum", supervisor="root")
    assert total is not None and 0 <= total < 5
    text = generate_latest(registry).decode()
    assert "secret-user-42" not in text


async def test_restart_loop_counts_restarts_starts_and_failures() -> None:
    metrics, registry = new_metrics()
    attempts = 0

    async def flaky(ctx: RuntimeContext) -> None:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0)
        if attempts <= 3:
            raise ConnectionError("boom")

    sup = RestartSupervisor(runnable(flaky, name="flaky"), RestartBackoff(initial=0.001, max=0.002))
    root = ProcessManager("root", observers=[metrics]).insert(sup)
    assert await run(root) is None
    s = scrape(registry)
    c = {"supervisor": "root", "child": "flaky"}
    assert value(s, "procman_child_starts_total", **c) == 4
    assert value(s, "procman_child_restarts_total", **c) == 3
    assert value(s, "procman_child_failures_total", **c, error_type="ConnectionError") == 3
    assert value(s, "procman_child_exits_total", **c, outcome="error") == 3
    assert value(s, "procman_child_exits_total", **c, outcome="ok") == 1


async def test_child_in_backoff_is_counted_by_state_at_scrape_time() -> None:
    metrics, registry = new_metrics()

    async def crash(ctx: RuntimeContext) -> None:
        raise OSError("down")

    sup = RestartSupervisor(runnable(crash, name="crash"), RestartBackoff(initial=60, max=60))
    root = ProcessManager("root", observers=[metrics]).insert(sup).insert(IdleProcess("idle"))
    metrics.track(root)
    task = asyncio.create_task(root.process_start())
    await until(lambda: any(c.state is ChildState.BACKOFF for c in root.snapshot().children))
    s = scrape(registry)
    expected = dict.fromkeys(STATES, 0) | {"backoff": 1, "running": 1}
    for state, n in expected.items():
        assert value(s, "procman_children", supervisor="root", state=state) == n, state
    assert not metrics.ready() and metrics.healthy()
    await root.process_handle().shutdown()
    await asyncio.wait_for(task, 10)
    assert not metrics.healthy()


async def test_grace_timeout_counts_stop_timeout_and_timeout_outcome() -> None:
    metrics, registry = new_metrics()
    stubborn = Stubborn()
    root = ProcessManager(
        "root", observers=[metrics], shutdown_grace_period=0.05, cancel_timeout=5
    ).insert(stubborn)
    task = asyncio.create_task(root.process_start())
    await asyncio.wait_for(stubborn.started.wait(), 5)
    t0 = time.monotonic()
    await root.process_handle().shutdown()
    took = time.monotonic() - t0
    await asyncio.wait_for(task, 10)
    s = scrape(registry)
    c = {"supervisor": "root", "child": "stubborn"}
    assert value(s, "procman_child_stop_timeouts_total", **c) == 1
    assert value(s, "procman_child_exits_total", **c, outcome="timeout") == 1
    assert value(s, "procman_child_exits_total", **c, outcome="cancelled") is None
    assert value(s, "procman_shutdown_duration_seconds_count", supervisor="root") == 1
    duration = value(s, "procman_shutdown_duration_seconds_sum", supervisor="root")
    assert duration is not None and 0.05 <= duration <= took + 0.01
    # cumulative buckets: nothing at or below 25 ms, the observation in every bucket >= 50 ms
    assert value(s, "procman_shutdown_duration_seconds_bucket", supervisor="root", le="0.025") == 0
    assert value(s, "procman_shutdown_duration_seconds_bucket", supervisor="root", le="+Inf") == 1
    assert value(s, "procman_shutdown_duration_seconds_bucket", supervisor="root", le="300.0") == 1


async def test_reload_results_ok_error_timeout() -> None:
    metrics, registry = new_metrics()

    async def raise_on_reload() -> None:
        raise RuntimeError("bad config")

    async def hang_on_reload() -> None:
        await asyncio.sleep(3600)

    root = ProcessManager("root", observers=[metrics], shutdown_grace_period=0.1)
    root.insert(worker("plain"))
    task = asyncio.create_task(root.process_start())
    await until(lambda: len(root) == 1)
    await root.process_handle().reload()  # ok: the worker takes the message synchronously
    root.add(Reloadable("raiser", raise_on_reload))
    await root.process_handle().reload()  # error
    root.add(Reloadable("hanger", hang_on_reload))
    await root.process_handle().reload()  # timeout after the grace period (0.1 s)
    await root.process_handle().shutdown()
    await asyncio.wait_for(task, 10)
    s = scrape(registry)
    for result in ("ok", "error", "timeout"):
        assert value(s, "procman_reloads_total", supervisor="root", result=result) == 1, result


async def test_nested_supervisors_report_every_path() -> None:
    metrics, registry = new_metrics()
    root = ProcessManager("root", observers=[metrics])
    inner = ProcessManager("inner").insert(worker("a")).insert(worker("b"))
    root.insert(inner).insert(worker("top"))
    metrics.track(root)
    task = asyncio.create_task(root.process_start())
    await until(lambda: snapshot_of(root) is not None and len(root) == 2 and len(inner) == 2)
    await until(lambda: metrics.ready())
    s = scrape(registry)
    assert value(s, "procman_children", supervisor="root", state="running") == 2
    assert value(s, "procman_children", supervisor="root/inner", state="running") == 2
    assert set(series(s, "procman_children")) == {
        frozenset({"supervisor": sup, "state": state}.items())
        for sup in ("root", "root/inner")
        for state in STATES
    }
    for child in ("a", "b"):
        assert value(s, "procman_child_starts_total", supervisor="root/inner", child=child) == 1
    assert value(s, "procman_child_starts_total", supervisor="root", child="inner") == 1
    await root.process_handle().shutdown()
    await asyncio.wait_for(task, 10)
    s = scrape(registry)
    for sup in ("root", "root/inner"):
        assert value(s, "procman_shutdown_duration_seconds_count", supervisor=sup) == 1
    assert (
        value(s, "procman_child_exits_total", supervisor="root/inner", child="a", outcome="ok") == 1
    )


async def test_init_series_false_creates_series_only_when_they_happen() -> None:
    metrics, registry = new_metrics(init_series=False)
    root = ProcessManager("root", observers=[metrics]).insert(returns())
    assert await run(root) is None
    s = scrape(registry)
    child = {"supervisor": "root", "child": "ok-child"}
    assert series(s, "procman_child_exits_total") == {
        frozenset({**child, "outcome": "ok"}.items()): 1
    }
    assert value(s, "procman_child_starts_total", **child) == 1
    for name in (
        "procman_child_restarts_total",
        "procman_child_stop_timeouts_total",
        "procman_reloads_total",
        "procman_shutdown_duration_seconds_count",
    ):
        assert series(s, name) == {}, name


# -- exemplars ---------------------------------------------------------------------------
async def test_trace_id_exemplars_in_openmetrics_when_a_span_is_active() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    metrics, registry = new_metrics()
    root = ProcessManager("root", observers=[metrics]).insert(fails(ValueError("x")))
    with tracer.start_as_current_span("deploy") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        assert isinstance(await run(root), ValueError)
    text = generate_openmetrics(registry).decode()
    exemplars: dict[str, dict[str, str]] = {}
    for family in parse_openmetrics(text):
        for s in family.samples:
            if s.exemplar is not None:
                exemplars[s.name] = s.exemplar.labels
    for name in (
        "procman_child_starts_total",
        "procman_child_exits_total",
        "procman_child_failures_total",
    ):
        assert exemplars[name]["trace_id"] == trace_id, name
        assert len(exemplars[name]["span_id"]) == 16
    assert exemplars["procman_shutdown_duration_seconds_bucket"]["trace_id"] == trace_id
    # the classic text format carries no exemplars
    assert "trace_id" not in generate_latest(registry).decode()


def test_exemplar_check_uses_the_public_context_api() -> None:
    from opentelemetry import baggage, context
    from opentelemetry.sdk.trace import TracerProvider

    from procman_metrics.exemplars import exemplar_source

    current = exemplar_source()
    assert current is not None
    assert current() is None
    token = context.attach(baggage.set_baggage("k", "v"))  # a context, but no span
    try:
        assert current() is None
    finally:
        context.detach(token)
    with TracerProvider().get_tracer("t").start_as_current_span("s") as span:
        ctx = span.get_span_context()
        assert current() == {
            "trace_id": format(ctx.trace_id, "032x"),
            "span_id": format(ctx.span_id, "016x"),
        }
    assert current() is None


async def test_no_exemplar_without_an_active_span() -> None:
    metrics, registry = new_metrics()
    root = ProcessManager("root", observers=[metrics]).insert(returns())
    assert await run(root) is None
    assert "trace_id" not in generate_openmetrics(registry).decode()


# -- tracking -----------------------------------------------------------------------------
async def test_tracked_roots_are_weak_and_deduplicated() -> None:
    metrics, registry = new_metrics()
    root = ProcessManager("gone")
    metrics.track(root)
    metrics.track(root)
    assert len(metrics.roots) == 1
    s = scrape(registry)
    assert value(s, "procman_children", supervisor="gone", state="running") == 0
    del root
    gc.collect()
    assert len(metrics.roots) == 0
    assert series(scrape(registry), "procman_children") == {}
    assert metrics.healthy() and metrics.ready()  # nothing tracked: vacuously true


async def test_several_roots_are_reported_and_untrack_removes_one() -> None:
    metrics, registry = new_metrics()
    a = ProcessManager("a", observers=[]).insert(worker("w"))
    b = ProcessManager("b", observers=[]).insert(worker("w")).insert(worker("v"))
    metrics.track(a)
    metrics.track(b)
    tasks = [asyncio.create_task(m.process_start()) for m in (a, b)]
    await until(lambda: len(a) == 1 and len(b) == 2 and a.snapshot().ready and b.snapshot().ready)
    s = scrape(registry)
    assert value(s, "procman_children", supervisor="a", state="running") == 1
    assert value(s, "procman_children", supervisor="b", state="running") == 2
    metrics.untrack(a)
    s = scrape(registry)
    assert value(s, "procman_children", supervisor="a", state="running") is None
    for m in (a, b):
        await m.process_handle().shutdown()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)


async def test_scrape_from_another_thread_takes_the_snapshot_on_the_loop() -> None:
    metrics, registry = new_metrics()
    root = ProcessManager("root", observers=[metrics]).insert(worker("w"))
    metrics.track(root)
    task = asyncio.create_task(root.process_start())
    await until(lambda: root.snapshot().ready)
    seen: list[bool] = []
    original = root.snapshot

    def spying_snapshot() -> Any:
        seen.append(threading.current_thread() is threading.main_thread())
        return original()

    root.snapshot = spying_snapshot  # type: ignore[method-assign]
    s = await asyncio.to_thread(scrape, registry)
    assert value(s, "procman_children", supervisor="root", state="running") == 1
    assert seen and all(seen)
    await root.process_handle().shutdown()
    await asyncio.wait_for(task, 10)


def test_snapshot_of_a_blocked_loop_times_out_instead_of_reading_racily() -> None:
    loop = asyncio.new_event_loop()
    root = ProcessManager("blocked", observers=[]).insert(IdleProcess())
    started = threading.Event()
    release = threading.Event()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        fut = asyncio.run_coroutine_threadsafe(root.process_start(), loop)
        deadline = time.monotonic() + 5
        while root.phase is not ManagerPhase.RUNNING:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        loop.call_soon_threadsafe(lambda: (started.set(), release.wait(10)))
        assert started.wait(5)
        t0 = time.monotonic()
        assert snapshot_of(root, timeout=0.2) is None
        assert time.monotonic() - t0 < 2
        release.set()
        snap = snapshot_of(root, timeout=5)
        assert snap is not None and snap.name == "blocked"
        asyncio.run_coroutine_threadsafe(root.process_handle().shutdown(), loop).result(5)
        fut.result(5)
    finally:
        release.set()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


# -- observer contract ----------------------------------------------------------------------
def test_wants_only_the_events_that_change_a_metric() -> None:
    metrics, _ = new_metrics()
    assert not metrics.wants(ShutdownRequested)
    assert not metrics.wants(RestartScheduled)
    from procman.events import ProcessFailed, ProcessStarted, ShutdownCompleted

    assert metrics.wants(ProcessStarted)
    assert metrics.wants(ProcessFailed)
    assert metrics.wants(ShutdownCompleted)


def test_one_instance_per_registry_and_close_unregisters() -> None:
    metrics, registry = new_metrics()
    with pytest.raises(ValueError, match="one PrometheusMetrics per registry"):
        PrometheusMetrics(registry)
    # the failed attempt left nothing half-registered
    assert "procman_build_info" in generate_latest(registry).decode()
    metrics.close()
    assert "procman_" not in generate_latest(registry).decode()
    PrometheusMetrics(registry)  # the names are free again


def test_default_registry_is_the_global_one() -> None:
    from prometheus_client import REGISTRY

    metrics = PrometheusMetrics()
    try:
        assert metrics.registry is REGISTRY
        assert REGISTRY.get_sample_value("procman_build_info", {"version": __version__}) == 1
    finally:
        metrics.close()


def test_shutdown_buckets_span_milliseconds_to_minutes() -> None:
    assert SHUTDOWN_BUCKETS[0] <= 0.001
    assert SHUTDOWN_BUCKETS[-1] >= 300
    assert list(SHUTDOWN_BUCKETS) == sorted(set(SHUTDOWN_BUCKETS))


# -- packaging ---------------------------------------------------------------------------------
def test_core_never_imports_procman_metrics_or_prometheus_client() -> None:
    code = (
        "import sys, procman, procman.demo, procman.cli, procman.builtin\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('procman_metrics', 'prometheus_client', 'opentelemetry')]\n"
        "assert not bad, bad\n"
        "import procman_metrics\n"
        "assert 'prometheus_client' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_missing_prometheus_client_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['prometheus_client'] = None\n"
        "try:\n"
        "    from procman_metrics import PrometheusMetrics\n"
        "except ImportError as exc:\n"
        "    assert \"pip install 'procman[prometheus]'\" in str(exc), exc\n"
        "else:\n"
        "    raise AssertionError('no ImportError')\n"
        "try:\n"
        "    from procman_metrics import MetricsServer\n"
        "except ImportError as exc:\n"
        "    assert \"pip install 'procman[prometheus]'\" in str(exc), exc\n"
        "else:\n"
        "    raise AssertionError('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- promtool ------------------------------------------------------------------------------------
async def test_exposition_passes_promtool_check_metrics() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is required in CI (install Debian's prometheus package)")
        pytest.skip("promtool not installed")
    metrics, registry = new_metrics()
    sup = RestartSupervisor(fails(ValueError("x"), "flaky"), RestartBackoff(0.001, 0.001))
    root = ProcessManager("root", observers=[metrics], shutdown_grace_period=0.05)
    root.insert(ProcessManager("inner").insert(worker("w"))).insert(sup).insert(Stubborn())
    metrics.track(root)
    task = asyncio.create_task(root.process_start())
    await until(
        lambda: (
            (
                value(
                    scrape(registry),
                    "procman_child_restarts_total",
                    supervisor="root",
                    child="flaky",
                )
                or 0
            )
            >= 2
        )
    )
    await root.process_handle().reload()
    await root.process_handle().shutdown()
    await asyncio.wait_for(task, 10)
    text = generate_latest(registry)
    for name in (
        "procman_children",
        "procman_child_starts_total",
        "procman_child_exits_total",
        "procman_child_failures_total",
        "procman_child_restarts_total",
        "procman_child_stop_timeouts_total",
        "procman_child_last_start_timestamp_seconds",
        "procman_shutdown_duration_seconds_bucket",
        "procman_reloads_total",
        "procman_build_info",
    ):
        assert f"\n{name}{{".encode() in text, name
    proc = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "metrics"], input=text, capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert proc.stdout.strip() == b"", proc.stdout.decode()  # no lint findings either


MULTIPROCESS_RECIPE = """
import asyncio, os, sys
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.parser import text_string_to_metric_families
from procman import ProcessManager
from procman.builtin import IdleProcess
from procman_metrics import PrometheusMetrics

async def main():
    metrics = PrometheusMetrics(CollectorRegistry())  # private: values go to the mmap files
    root = ProcessManager("worker-1", observers=[metrics]).insert(IdleProcess("idle"))
    metrics.track(root)
    task = asyncio.create_task(root.process_start())
    while not root.snapshot().ready:
        await asyncio.sleep(0.01)
    served = CollectorRegistry()
    multiprocess.MultiProcessCollector(served)
    served.register(metrics.children_collector)
    text = generate_latest(served).decode()
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for f in text_string_to_metric_families(text) for s in f.samples}
    c = (("child", "idle"), ("supervisor", "worker-1"))
    assert values[("procman_child_starts_total", c)] == 1, values
    assert values[("procman_child_restarts_total", c)] == 0
    assert values[("procman_children", (("state", "running"), ("supervisor", "worker-1")))] == 1
    assert values[("procman_build_info", (("version", sys.argv[1]),))] == 1
    await root.process_handle().shutdown()
    await task

asyncio.run(main())
"""


def test_multiprocess_mode_recipe_from_the_docs(tmp_path: Any) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run(
        [sys.executable, "-c", MULTIPROCESS_RECIPE, __version__], env=env, check=True, timeout=60
    )
    assert any(p.name.endswith(".db") for p in tmp_path.iterdir())


def test_the_private_increment_still_matches_prometheus_client() -> None:
    """procman_metrics.increment uses prometheus_client internals (measured hot path).

    If this fails, the installed prometheus_client changed ``_value.inc`` /
    ``_value.set_exemplar`` / ``_value.set``: the public fallback is in use
    (slower per event, see the module docstring); revisit
    procman_metrics/increment.py.
    """
    from prometheus_client import Counter, Gauge

    from procman_metrics import increment

    assert increment.PRIVATE, (
        "prometheus_client's counter/gauge internals changed; procman_metrics.increment "
        "falls back to the public Counter.inc / Gauge.set: update the module"
    )
    registry = CollectorRegistry()
    counter = Counter("probe_total", "probe", ("x",), registry=registry)
    exemplar = {"trace_id": "a" * 32, "span_id": "b" * 16}
    increment.inc(counter.labels("p"), exemplar)
    increment.inc(counter.labels("p"), None)
    public = Counter("public_total", "probe", ("x",), registry=registry)
    public.labels("p").inc(1, exemplar)
    public.labels("p").inc()
    gauge = Gauge("probe_gauge", "probe", ("x",), registry=registry)
    increment.set_gauge(gauge.labels("p"), 2.5)
    samples = {
        s.name: s
        for family in parse_openmetrics(generate_openmetrics(registry).decode())
        for s in family.samples
    }
    assert samples["probe_total"].value == samples["public_total"].value == 2
    assert samples["probe_total"].exemplar.labels == samples["public_total"].exemplar.labels
    assert samples["probe_gauge"].value == 2.5


# -- observers learn their tree (issue 10 section 4) -------------------------------------------
async def test_on_tree_start_tracks_the_root_without_track() -> None:
    metrics, registry = new_metrics()
    root = ProcessManager("root", observers=[])
    root.insert(IdleProcess())
    task = asyncio.ensure_future(root.process_start())
    await root.wait_started()
    assert value(scrape(registry), "procman_children", supervisor="root", state="running") is None
    metrics.on_tree_start(root)  # what the manager calls when a root it observes starts
    metrics.on_tree_start(root)  # once per start; a second call changes nothing
    assert metrics.roots.managers() == [root]
    assert value(scrape(registry), "procman_children", supervisor="root", state="running") == 1
    assert metrics.healthy() and metrics.ready()
    await root.process_handle().shutdown()
    await task
    assert not metrics.healthy()


async def test_attached_as_an_observer_the_gauge_and_health_need_no_track() -> None:
    metrics, registry = new_metrics()
    root = ProcessManager("root", observers=[metrics])
    nested = ProcessManager("nested")
    nested.insert(IdleProcess())
    root.insert(nested)
    task = asyncio.ensure_future(root.process_start())
    await root.wait_started()
    assert metrics.roots.managers() == [root]  # the root, not the nested manager
    await until(
        lambda: (
            value(scrape(registry), "procman_children", supervisor="root/nested", state="running")
            == 1
        )
    )
    assert metrics.healthy()
    await root.process_handle().shutdown()
    await task


async def test_observers_from_env_prometheus_serves_the_gauge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import prometheus_client

    from procman.observe import observers_from_env

    registry = CollectorRegistry()
    monkeypatch.setattr(prometheus_client, "REGISTRY", registry)
    monkeypatch.setattr("procman_metrics.prometheus.REGISTRY", registry)
    monkeypatch.setenv("PROCMAN_OBSERVERS", "prometheus")
    root = ProcessManager("envroot", observers=observers_from_env())
    root.insert(IdleProcess())
    task = asyncio.ensure_future(root.process_start())
    await root.wait_started()
    assert value(scrape(registry), "procman_children", supervisor="envroot", state="running") == 1
    await root.process_handle().shutdown()
    await task


# -- policy metrics (issue 11) -------------------------------------------------------------------
def test_ready_duration_histogram_and_restarts_by_strategy() -> None:
    from procman.events import ProcessReady, RestartRequested

    metrics, registry = new_metrics()
    metrics.on_event(ProcessReady(supervisor="app", child="db", time=1.0, duration=0.25))
    metrics.on_event(ProcessReady(supervisor="app", child="cache", time=1.0, duration=3.0))
    for strategy in ("one_for_all", "one_for_all", "rest_for_one"):
        metrics.on_event(
            RestartRequested(
                supervisor="app", time=2.0, strategy=strategy, trigger="db", children=("db", "c")
            )
        )
    s = scrape(registry)
    name = "procman_child_ready_duration_seconds"
    assert value(s, f"{name}_count", supervisor="app") == 2
    assert value(s, f"{name}_sum", supervisor="app") == 3.25
    assert value(s, f"{name}_bucket", supervisor="app", le="0.25") == 1
    assert value(s, f"{name}_bucket", supervisor="app", le="5.0") == 2
    restarts = "procman_supervisor_restarts_total"
    assert value(s, restarts, supervisor="app", strategy="one_for_all") == 2
    assert value(s, restarts, supervisor="app", strategy="rest_for_one") == 1
    assert value(s, restarts, supervisor="app", strategy="one_for_one") == 0  # init_series


def test_a_cancelled_reload_is_counted_as_cancelled() -> None:
    from procman.events import ReloadCompleted

    metrics, registry = new_metrics()
    metrics.on_event(ProcessStarting(supervisor="app", child="w", time=0.0))  # init_series
    s = scrape(registry)
    for result in ("ok", "error", "timeout", "cancelled"):
        assert value(s, "procman_reloads_total", supervisor="app", result=result) == 0
    for strategy in ("one_for_one", "one_for_all", "rest_for_one"):
        restarts = "procman_supervisor_restarts_total"
        assert value(s, restarts, supervisor="app", strategy=strategy) == 0
    metrics.on_event(ReloadCompleted(supervisor="app", time=1.0, duration=0.1, result="cancelled"))
    s = scrape(registry)
    assert value(s, "procman_reloads_total", supervisor="app", result="cancelled") == 1
    assert value(s, "procman_reloads_total", supervisor="app", result="error") == 0


async def test_metrics_server_serves_the_attached_tree_without_track() -> None:
    from procman_metrics import MetricsServer

    async def get(port: int, path: str) -> tuple[int, str]:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        head, _, body = raw.decode().partition("\r\n\r\n")
        return int(head.split()[1]), body

    metrics, registry = new_metrics()
    server = MetricsServer(port=0, registry=registry, metrics=metrics)
    # a root whose only observer is the metrics observer: no track() anywhere
    root = ProcessManager("served", observers=[metrics]).insert(IdleProcess()).insert(server)
    task = asyncio.ensure_future(root.process_start())
    port = await asyncio.wait_for(server.wait_bound(), 5)
    assert metrics.roots.managers() == [root]
    await until(lambda: root.snapshot().ready)
    status, body = await get(port, "/metrics")
    assert status == 200
    assert 'procman_children{state="running",supervisor="served"} 2.0' in body
    assert (await get(port, "/healthz"))[0] == 200
    assert (await get(port, "/readyz"))[0] == 200
    await root.process_handle().shutdown()
    await asyncio.wait_for(task, 10)
