"""Soak test (on demand): minutes of random churn with every observer attached.

    make soak                                   # 10 minutes
    PROCMAN_SOAK_SECONDS=60 make soak           # shorter

Children are added continuously; they succeed, fail under RestartSupervisors,
or live in short-lived nested managers. Checks: memory stays flat (auto
cleanup really frees children, observers keep no per-run state), event counts
match the metrics, nothing is left running at the end.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import statistics
import time

import pytest

from procman import ProcessManager, RuntimeContext, runnable
from procman.builtin import IdleProcess, RestartBackoff, RestartSupervisor
from procman.events import LifecycleEvent, ProcessFailed, ProcessStarted

pytestmark = pytest.mark.soak

SECONDS = float(os.environ.get("PROCMAN_SOAK_SECONDS", "600"))


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Counter:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def on_event(self, event: LifecycleEvent) -> None:
        self.counts[event.name] = self.counts.get(event.name, 0) + 1


def short_lived(n: int, fail: bool) -> RestartSupervisor:
    runs = 0

    async def work(ctx: RuntimeContext) -> None:
        nonlocal runs
        runs += 1
        await ctx.tick(asyncio.sleep(random.uniform(0, 0.01)))
        if fail and runs < 3:
            raise ConnectionError("flaky")

    return RestartSupervisor(runnable(work, name=f"job-{n % 50}"), RestartBackoff(0, 0.001))


def nested_group(n: int) -> ProcessManager:
    group = ProcessManager(f"group-{n % 10}", shutdown_grace_period=1)
    for i in range(5):
        group.insert(short_lived(i, fail=i % 2 == 0))
    return group


async def churn(seconds: float) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from procman.observe import LoggingObserver, OtelTracingObserver
    from procman_metrics import PrometheusMetrics

    class Drop(SpanExporter):
        def export(self, spans):  # type: ignore[no-untyped-def]
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    counter = Counter()
    logger = logging.getLogger("procman.soak")
    logger.addHandler(logging.NullHandler())
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    root = ProcessManager(
        "soak",
        observers=[OtelTracingObserver(provider), LoggingObserver(logger), metrics, counter],
    )
    root.insert(IdleProcess())
    metrics.track(root)
    task = asyncio.create_task(root.process_start())
    await root.wait_started()
    samples: list[tuple[float, int]] = []
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        for _ in range(50):
            n += 1
            if n % 25 == 0:
                root.add(nested_group(n))
            else:
                root.add(short_lived(n, fail=random.random() < 0.3))
        await asyncio.sleep(0.05)
        if n % 1000 == 0:
            generate_latest(registry)  # a scrape now and then
            gc.collect()
            samples.append((time.monotonic() - start, rss_bytes()))
    await asyncio.wait_for(asyncio.shield(asyncio.sleep(1)), 5)  # let the last jobs end
    await root.process_handle().shutdown()
    await task
    provider.shutdown()

    # counts match the metrics
    values: dict[str, float] = {}
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in fam.samples:
            values[s.name] = values.get(s.name, 0.0) + s.value
    assert values["procman_child_starts_total"] == counter.counts[ProcessStarted.name]
    assert values["procman_child_failures_total"] == counter.counts[ProcessFailed.name]
    assert len(root) == 0
    # memory is flat: the last quarter is not above the first quarter by more than 20 %
    assert len(samples) >= 8, samples
    quarter = len(samples) // 4
    first = statistics.median(r for _, r in samples[quarter : 2 * quarter])
    last = statistics.median(r for _, r in samples[-quarter:])
    print(f"soak: {n} children, rss {first / 2**20:.1f} MiB -> {last / 2**20:.1f} MiB")
    assert last <= first * 1.2 + 8 * 2**20, (first, last, samples)


def test_soak() -> None:
    asyncio.run(churn(SECONDS))
