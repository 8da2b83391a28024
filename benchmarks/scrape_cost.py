"""Scrape cost of procman_metrics for a big tree: ``python -m benchmarks.scrape_cost``.

Builds a tree of ``--children`` IdleProcess children spread over
``--supervisors`` nested managers (all running), observed by PrometheusMetrics
on private registries, and reports the median of ``--runs`` measurements of:

* ``snapshot``: ``root.snapshot()`` of the whole tree;
* ``children gauge``: rendering only ``procman_children`` (the scrape-time collector);
* ``/metrics text`` and ``/metrics openmetrics``: ``generate_latest`` of the full
  registry (with ``init_series=True``, the default, and ``False``);
* ``threaded render``: the text render from a worker thread as MetricsServer does it
  (snapshots hop to the loop), and the longest event-loop stall it caused;
* ``HTTP scrape``: a GET /metrics against a MetricsServer on 127.0.0.1;
* the per-event cost of the observer (cached series, no span active).

``_created`` series are emitted by prometheus_client unless the environment sets
``PROMETHEUS_DISABLE_CREATED_SERIES=True``; run both ways to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import timeit
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from procman import ProcessManager
from procman.builtin import IdleProcess
from procman.events import ProcessStarted, ProcessStopped
from procman_metrics import MetricsServer, PrometheusMetrics
from procman_metrics.collector import ChildrenCollector


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


async def amedian_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await fn()  # type: ignore[misc]
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


async def http_get(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


async def main(children: int, supervisors: int, runs: int) -> None:
    full_reg, lazy_reg = CollectorRegistry(), CollectorRegistry()
    full = PrometheusMetrics(full_reg)
    lazy = PrometheusMetrics(lazy_reg, init_series=False)
    root = ProcessManager("root", observers=[full, lazy])
    per = children // supervisors
    for s in range(supervisors):
        sup = ProcessManager(f"sup-{s:03d}")
        for c in range(per):
            sup.insert(IdleProcess(f"child-{c:04d}"))
        root.insert(sup)
    server = MetricsServer(port=0, registry=full_reg)
    root.insert(server)
    full.track(root)
    lazy.track(root)
    tree_only = CollectorRegistry()
    tree_only.register(ChildrenCollector(full.roots))

    t0 = time.perf_counter()
    task = asyncio.create_task(root.process_start())
    port = await server.wait_bound()
    while not root.snapshot().ready:  # noqa: ASYNC110 - polling the tree is the point
        await asyncio.sleep(0.01)
    started = time.perf_counter() - t0
    total = sum(len(s.children) for s in root.snapshot().walk())

    text = generate_latest(full_reg)
    lines = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    lazy_lines = sum(
        1 for line in generate_latest(lazy_reg).splitlines() if line and not line.startswith(b"#")
    )

    results: list[tuple[str, str]] = []
    results.append(("snapshot", f"{median_ms(root.snapshot, runs):8.1f} ms"))
    results.append(
        ("children gauge only", f"{median_ms(lambda: generate_latest(tree_only), runs):8.1f} ms")
    )
    results.append(
        (
            f"/metrics text, init_series=True ({lines} samples, {len(text) / 1e6:.1f} MB)",
            f"{median_ms(lambda: generate_latest(full_reg), runs):8.1f} ms",
        )
    )
    results.append(
        (
            f"/metrics text, init_series=False ({lazy_lines} samples)",
            f"{median_ms(lambda: generate_latest(lazy_reg), runs):8.1f} ms",
        )
    )
    results.append(
        (
            "/metrics openmetrics, init_series=True",
            f"{median_ms(lambda: generate_openmetrics(full_reg), runs):8.1f} ms",
        )
    )

    stalls: list[float] = []

    async def threaded() -> None:
        stop = False
        worst = 0.0

        async def ticker() -> None:
            nonlocal worst
            last = time.perf_counter()
            while not stop:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                worst = max(worst, now - last)
                last = now

        tick = asyncio.create_task(ticker())
        await asyncio.to_thread(generate_latest, full_reg)
        stop = True
        await tick
        stalls.append(worst * 1000)

    results.append(
        ("threaded render (as MetricsServer)", f"{await amedian_ms(threaded, runs):8.1f} ms")
    )
    results.append(("  longest event-loop stall during it", f"{statistics.median(stalls):8.1f} ms"))
    results.append(
        (
            "HTTP GET /metrics on 127.0.0.1",
            f"{await amedian_ms(lambda: http_get(port), runs):8.1f} ms",
        )
    )

    started_event = ProcessStarted(supervisor="sup-000", child="child-0000", time=0.0)
    stopped_event = ProcessStopped(supervisor="sup-000", child="child-0000", time=0.0)
    n = 200_000
    per_started = timeit.timeit(lambda: full.on_event(started_event), number=n) / n * 1e6
    per_stopped = timeit.timeit(lambda: full.on_event(stopped_event), number=n) / n * 1e6
    baseline = timeit.timeit(lambda: None, number=n) / n * 1e6
    results.append(("event ProcessStarted (counter + gauge)", f"{per_started - baseline:8.2f} us"))
    results.append(("event ProcessStopped (one counter)", f"{per_stopped - baseline:8.2f} us"))

    await root.process_handle().shutdown()
    await task

    created = os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").lower()
    created_on = created not in ("true", "1", "t")
    print(
        f"procman scrape cost: {total - supervisors - 1} leaf children under {supervisors} "
        f"supervisors (+ root), started in {started:.2f}s; median of {runs} runs; "
        f"_created series {'on' if created_on else 'off'}"
    )
    width = max(len(name) for name, _ in results)
    for name, value in results:
        print(f"  {name:<{width}}  {value}")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=10_000)
    parser.add_argument("--supervisors", type=int, default=100)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.children, args.supervisors, args.runs))


if __name__ == "__main__":
    cli()
