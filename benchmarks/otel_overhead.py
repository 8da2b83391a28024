"""Cost of procman's OpenTelemetry instrumentation against hand-made spans.

10k children that only wait for shutdown, started and shut down, median of a
few rounds, per scenario:

* ``procman``: ``ProcessManager`` with no observer, IdleProcess children (the floor);
* ``procman+otel``: the same with ``OtelTracingObserver`` (SDK ``TracerProvider``,
  ``BatchSpanProcessor``, an exporter that drops everything);
* ``procman+otel(link)``: ``child_spans="link"`` (two short spans per run);
* ``tasks``: bare asyncio tasks, each waiting on its own future;
* ``tasks+span``: the same tasks, each wrapped by hand in one span
  (``start_as_current_span`` inside the task) -- what you would write without procman.

python -m benchmarks.otel_overhead [--children 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from procman import ProcessManager
from procman.builtin import IdleProcess
from procman.observe.otel import OtelTracingObserver


class DropExporter(SpanExporter):
    """Accepts and discards every span (counts them)."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def make_provider() -> tuple[TracerProvider, DropExporter]:
    exporter = DropExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=1 << 17))
    return provider, exporter


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def run_procman(n: int, observer: OtelTracingObserver | None) -> float:
    root = ProcessManager("bench", observers=[] if observer is None else [observer])
    for _ in range(n):
        root.insert(IdleProcess())
    t0 = time.perf_counter()
    task = asyncio.ensure_future(root.process_start())
    await settle()
    if observer is not None and observer.child_spans == "run":
        assert observer.open_spans == n, observer.open_spans
    await root.process_handle().shutdown()
    await task
    return time.perf_counter() - t0


async def run_tasks(n: int, provider: TracerProvider | None) -> float:
    loop = asyncio.get_running_loop()
    tracer = provider.get_tracer("bench") if provider is not None else None

    async def plain(fut: asyncio.Future[None]) -> None:
        await fut

    async def spanned(fut: asyncio.Future[None]) -> None:
        assert tracer is not None
        with tracer.start_as_current_span("run"):
            await fut

    body = plain if tracer is None else spanned
    t0 = time.perf_counter()
    futures = [loop.create_future() for _ in range(n)]
    tasks = [loop.create_task(body(f)) for f in futures]
    await settle()
    for f in futures:
        f.set_result(None)
    await asyncio.gather(*tasks)
    return time.perf_counter() - t0


def measure(
    scenarios: dict[str, Callable[[], Awaitable[float]]], rounds: int, provider: TracerProvider
) -> dict[str, float]:
    """Median seconds per scenario; rounds interleave the scenarios so load drift hits all."""
    times: dict[str, list[float]] = {name: [] for name in scenarios}
    for _ in range(rounds):
        for name, fn in scenarios.items():
            gc.collect()
            times[name].append(asyncio.run(fn()))  # type: ignore[arg-type]
            provider.force_flush()
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--children", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    n, rounds = args.children, args.rounds
    provider, exporter = make_provider()
    run_observer = OtelTracingObserver(provider)
    link_observer = OtelTracingObserver(provider, child_spans="link")
    scenarios: dict[str, Callable[[], Awaitable[float]]] = {
        "procman": lambda: run_procman(n, None),
        "procman+otel": lambda: run_procman(n, run_observer),
        "procman+otel(link)": lambda: run_procman(n, link_observer),
        "tasks": lambda: run_tasks(n, None),
        "tasks+span": lambda: run_tasks(n, provider),
    }
    results = measure(scenarios, rounds, provider)
    provider.shutdown()
    print(f"{n} children, start + shutdown, median of {rounds} rounds ({exporter.count} spans)")
    print(f"{'scenario':<20} {'total ms':>9} {'us/child':>9}")
    for name, seconds in results.items():
        print(f"{name:<20} {seconds * 1e3:9.1f} {seconds / n * 1e6:9.2f}")
    otel_cost = results["procman+otel"] - results["procman"]
    span_cost = results["tasks+span"] - results["tasks"]
    print(
        f"span cost per child: procman observer {otel_cost / n * 1e6:.2f} us, "
        f"hand-made span {span_cost / n * 1e6:.2f} us "
        f"(ratio {otel_cost / span_cost if span_cost > 0 else float('nan'):.2f}); "
        f"procman+otel / tasks+span = {results['procman+otel'] / results['tasks+span']:.2f}"
    )
    return results


if __name__ == "__main__":
    main()
