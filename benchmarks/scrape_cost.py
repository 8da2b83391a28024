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
* ``HTTP scrape``: GET /metrics against a real MetricsServer on 127.0.0.1, without
  and with ``Accept-Encoding: gzip``: the time until the whole response was read,
  the body bytes, and the longest event-loop stall while the server served it.
  The client (``http.client``) runs in a worker thread, so the loop carries only
  the server; the stall is the longest gap seen by a ticker task on the server's
  loop that sleeps 1 ms at a time while the scrape runs (``idle`` = the same
  ticker with no scrape, the noise floor);
* the per-event cost of the observer (cached series, no span active).

``_created`` series are emitted by prometheus_client unless the environment sets
``PROMETHEUS_DISABLE_CREATED_SERIES=True``; run both ways to compare.

Machine-readable figures: the last stdout line is ``SCRAPE-RESULT {json}``
(:data:`MARKER`), and ``--json PATH`` writes the same document to a file.
Times are in ms, sizes in bytes; ``http.plain`` / ``http.gzip`` hold the
medians of ``--runs`` scrapes (``stall_ms``, ``scrape_ms``, ``bytes``) and the
worst stall (``stall_max_ms``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import gzip
import http.client
import json
import os
import statistics
import sys
import time
import timeit
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from procman import ProcessManager
from procman.builtin import IdleProcess
from procman.events import ProcessStarted, ProcessStopped
from procman_metrics import MetricsServer, PrometheusMetrics
from procman_metrics.collector import ChildrenCollector

MARKER = "SCRAPE-RESULT "
TICK_S = 0.001


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


async def amedian_ms(fn: Callable[[], Awaitable[object]], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def fetch(port: int, use_gzip: bool) -> tuple[float, bytes, str]:
    """GET /metrics with a blocking client (run it in a thread): seconds, body, encoding."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Accept-Encoding": "gzip" if use_gzip else "identity"}
    try:
        t0 = time.perf_counter()
        conn.request("GET", "/metrics", headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        elapsed = time.perf_counter() - t0
        if resp.status != 200:
            raise RuntimeError(f"GET /metrics: HTTP {resp.status}")
        return elapsed, body, resp.getheader("Content-Encoding") or "identity"
    finally:
        conn.close()


async def longest_gap(work: Awaitable[Any]) -> tuple[Any, float]:
    """Run ``work`` while a ticker sleeps ``TICK_S`` at a time on this loop.

    Returns ``work``'s result and the longest gap (seconds) between two wake-ups
    of the ticker (or between its start and the end of ``work``).
    """
    stop = False
    worst = 0.0

    async def ticker() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not stop:
            await asyncio.sleep(TICK_S)
            now = time.perf_counter()
            worst = max(worst, now - last)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0)  # the ticker has taken its first timestamp
    try:
        result = await work
    finally:
        stop = True
        await tick
    return result, worst


async def http_scrapes(port: int, use_gzip: bool, runs: int) -> dict[str, Any]:
    """``runs`` scrapes through the server; medians and the worst stall."""
    stalls: list[float] = []
    times: list[float] = []
    sizes: list[int] = []
    decoded = 0
    for _ in range(runs):
        (elapsed, body, encoding), gap = await longest_gap(asyncio.to_thread(fetch, port, use_gzip))
        expected = "gzip" if use_gzip else "identity"
        if encoding != expected:
            raise RuntimeError(f"asked for {expected}, got Content-Encoding {encoding}")
        stalls.append(gap * 1000)
        times.append(elapsed * 1000)
        sizes.append(len(body))
        decoded = len(gzip.decompress(body)) if use_gzip else len(body)
    return {
        "scrape_ms": statistics.median(times),
        "stall_ms": statistics.median(stalls),
        "stall_max_ms": max(stalls),
        "stalls_ms": stalls,
        "bytes": statistics.median(sizes),
        "decoded_bytes": decoded,
    }


async def main(children: int, supervisors: int, runs: int) -> dict[str, Any]:
    """Measure, print the human-readable lines and return the figures."""
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

    doc: dict[str, Any] = {"samples": lines, "lazy_samples": lazy_lines}
    results: list[tuple[str, str]] = []
    doc["snapshot_ms"] = median_ms(root.snapshot, runs)
    results.append(("snapshot", f"{doc['snapshot_ms']:8.1f} ms"))
    results.append(
        ("children gauge only", f"{median_ms(lambda: generate_latest(tree_only), runs):8.1f} ms")
    )
    doc["render_ms"] = median_ms(lambda: generate_latest(full_reg), runs)
    doc["render_bytes"] = len(text)
    results.append(
        (
            f"/metrics text, init_series=True ({lines} samples, {len(text) / 1e6:.1f} MB)",
            f"{doc['render_ms']:8.1f} ms",
        )
    )
    doc["gzip_ms"] = median_ms(lambda: gzip.compress(text, compresslevel=1), runs)
    doc["gzip_bytes"] = len(gzip.compress(text, compresslevel=1))
    results.append(
        (
            f"  gzip level 1 of it ({doc['gzip_bytes'] / 1e6:.2f} MB)",
            f"{doc['gzip_ms']:8.1f} ms",
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
            f"{median_ms(lambda: generate_openmetrics(full_reg), runs):8.1f} ms",  # type: ignore[no-untyped-call]
        )
    )

    stalls: list[float] = []

    async def threaded() -> None:
        _, worst = await longest_gap(asyncio.to_thread(generate_latest, full_reg))
        stalls.append(worst * 1000)

    doc["threaded_render_ms"] = await amedian_ms(threaded, runs)
    doc["threaded_render_stall_ms"] = statistics.median(stalls)
    results.append(("threaded render (as MetricsServer)", f"{doc['threaded_render_ms']:8.1f} ms"))
    results.append(
        ("  longest event-loop stall during it", f"{doc['threaded_render_stall_ms']:8.1f} ms")
    )

    idle: list[float] = []
    for _ in range(runs):
        _, gap = await longest_gap(asyncio.sleep(0.05))
        idle.append(gap * 1000)
    doc["idle_stall_ms"] = statistics.median(idle)
    await asyncio.to_thread(fetch, port, False)  # warm-up: thread pool, first connection
    doc["http"] = {
        "plain": await http_scrapes(port, False, runs),
        "gzip": await http_scrapes(port, True, runs),
    }
    for key, h in doc["http"].items():
        results.append(
            (
                f"HTTP GET /metrics on 127.0.0.1, {key} ({h['bytes'] / 1e6:.2f} MB on the wire)",
                f"{h['scrape_ms']:8.1f} ms",
            )
        )
        results.append(
            (
                "  longest event-loop stall while served (median / max)",
                f"{h['stall_ms']:8.1f} / {h['stall_max_ms']:.1f} ms",
            )
        )
    results.append(
        ("  the same ticker with no scrape (noise floor)", f"{doc['idle_stall_ms']:8.1f} ms")
    )
    # The stalls above are mostly CPython's full (gen 2) collections, triggered by the
    # render's allocations and walking every object of the 10k-child tree while holding
    # the GIL. The advice in docs/benchmarks.md: gc.freeze() once the tree has started.
    gc.collect()
    gc.freeze()
    try:
        doc["frozen"] = {
            "objects": gc.get_freeze_count(),
            "plain": await http_scrapes(port, False, runs),
            "gzip": await http_scrapes(port, True, runs),
        }
    finally:
        gc.unfreeze()
    for key in ("plain", "gzip"):
        h = doc["frozen"][key]
        results.append(
            (
                f"  after gc.freeze(), {key}: scrape / longest stall (median / max)",
                f"{h['scrape_ms']:8.1f} ms / {h['stall_ms']:.1f} / {h['stall_max_ms']:.1f} ms",
            )
        )

    started_event = ProcessStarted(supervisor="sup-000", child="child-0000", time=0.0)
    stopped_event = ProcessStopped(supervisor="sup-000", child="child-0000", time=0.0)
    n = 200_000
    per_started = timeit.timeit(lambda: full.on_event(started_event), number=n) / n * 1e6
    per_stopped = timeit.timeit(lambda: full.on_event(stopped_event), number=n) / n * 1e6
    baseline = timeit.timeit(lambda: None, number=n) / n * 1e6
    doc["event_started_us"] = per_started - baseline
    doc["event_stopped_us"] = per_stopped - baseline
    results.append(("event ProcessStarted (counter + gauge)", f"{per_started - baseline:8.2f} us"))
    results.append(("event ProcessStopped (one counter)", f"{per_stopped - baseline:8.2f} us"))

    await root.process_handle().shutdown()
    await task

    created = os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").lower()
    created_on = created not in ("true", "1", "t")
    leaves = total - supervisors - 1
    doc.update(
        children=leaves,
        supervisors=supervisors,
        runs=runs,
        started_s=started,
        created_series=created_on,
        python=sys.version.split()[0],
    )
    print(
        f"procman scrape cost: {leaves} leaf children under {supervisors} "
        f"supervisors (+ root), started in {started:.2f}s; median of {runs} runs; "
        f"_created series {'on' if created_on else 'off'}"
    )
    width = max(len(name) for name, _ in results)
    for name, value in results:
        print(f"  {name:<{width}}  {value}")
    return doc


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--children", type=int, default=10_000)
    parser.add_argument("--supervisors", type=int, default=100)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    doc = asyncio.run(main(args.children, args.supervisors, args.runs))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(MARKER + json.dumps(doc, sort_keys=True), flush=True)


if __name__ == "__main__":
    cli()
