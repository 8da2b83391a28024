"""Workload E: start N ``wait_ready`` children, concurrently and in order.

Every child signals readiness at once when it runs, then idles until asked
to stop. Each run measures, in this order and each in a fresh tree:

* ``concurrent``: from before the tree is built until the supervisor knows
  all N are ready (procman: ``await manager.wait_ready()`` of an unordered
  manager whose children are inserted with ``wait_ready=True``);
* ``concurrent_stop``: the graceful shutdown of that tree;
* ``ordered``: the same with ``ordered(True)``: each child starts once the
  previous one is ready;
* ``ordered_stop``: the ordered shutdown, one child at a time in reverse
  order, each ended before the previous one is asked.

The baseline does the same by hand in bare asyncio: one task per child, a
readiness counter (concurrent) or awaiting each child's own ready future
before creating the next task (ordered); stopping all at once, or one at a
time in reverse order awaiting each task.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.measure import PhaseClock

RunE = Callable[[int, PhaseClock], Awaitable[dict[str, Any]]]


async def baseline(n: int, clock: PhaseClock) -> dict[str, Any]:
    """Bare asyncio, the same two start orders and stop orders by hand."""
    loop = asyncio.get_running_loop()

    async def concurrent() -> tuple[float, float]:
        ready = 0
        all_ready = loop.create_future()
        stops = [loop.create_future() for _ in range(n)]

        async def child(stop: asyncio.Future[None]) -> None:
            nonlocal ready
            ready += 1
            if ready == n:
                all_ready.set_result(None)
            await stop

        t0 = time.perf_counter()
        tasks = [loop.create_task(child(s)) for s in stops]
        await all_ready
        t1 = time.perf_counter()
        for s in stops:
            s.set_result(None)
        await asyncio.wait(tasks)
        return t1 - t0, time.perf_counter() - t1

    async def ordered() -> tuple[float, float]:
        async def child(ready: asyncio.Future[None], stop: asyncio.Future[None]) -> None:
            ready.set_result(None)
            await stop

        t0 = time.perf_counter()
        started: list[tuple[asyncio.Task[None], asyncio.Future[None]]] = []
        for _ in range(n):
            ready, stop = loop.create_future(), loop.create_future()
            started.append((loop.create_task(child(ready, stop)), stop))
            await ready
        t1 = time.perf_counter()
        for task, stop in reversed(started):
            stop.set_result(None)
            await task
        return t1 - t0, time.perf_counter() - t1

    return await _both(clock, n, concurrent, ordered)


async def _both(
    clock: PhaseClock,
    n: int,
    concurrent: Callable[[], Awaitable[tuple[float, float]]],
    ordered: Callable[[], Awaitable[tuple[float, float]]],
) -> dict[str, Any]:
    clock.start("run")
    c_start, c_stop = await concurrent()
    clock.pause()
    gc.collect()  # each variant starts from a clean heap
    clock.resume()
    o_start, o_stop = await ordered()
    clock.stop()
    return {
        "concurrent": c_start,
        "concurrent_stop": c_stop,
        "ordered": o_start,
        "ordered_stop": o_stop,
        "ordered_us_per_child": o_start / n * 1e6,
        "concurrent_us_per_child": c_start / n * 1e6,
    }


def _procman(observers_key: str) -> RunE:
    async def run(n: int, clock: PhaseClock) -> dict[str, Any]:
        from benchmarks.backends import OBSERVERS
        from procman import ProcessManager
        from procman.builtin import IdleProcess
        from procman.lowlevel import signal_ready  # what ctx.ready() / guard.ready() call

        class ReadyIdle(IdleProcess):
            """An idle child that signals readiness as soon as it runs."""

            __slots__ = ()

            async def process_start(self) -> None:
                signal_ready()
                await IdleProcess.process_start(self)

        observers, cleanup = OBSERVERS[observers_key]()

        def variant(ordered: bool) -> Callable[[], Awaitable[tuple[float, float]]]:
            async def go() -> tuple[float, float]:
                t0 = time.perf_counter()
                manager = ProcessManager(
                    "bench", observers=observers, shutdown_grace_period=60.0, ordered=ordered
                )
                for _ in range(n):
                    manager.insert(ReadyIdle(), wait_ready=True)
                task = asyncio.get_running_loop().create_task(manager.process_start())
                await manager.wait_ready()
                t1 = time.perf_counter()
                if not manager.is_ready():
                    raise RuntimeError("wait_ready() returned before the tree was ready")
                await manager.process_handle().shutdown()
                await task
                return t1 - t0, time.perf_counter() - t1

            return go

        try:
            return await _both(clock, n, variant(False), variant(True))
        finally:
            cleanup()

    return run


RUNNERS: dict[str, RunE] = {
    "baseline": baseline,
    "procman": _procman("none"),
    "procman-logging": _procman("logging"),
    "procman-all": _procman("all"),
}
