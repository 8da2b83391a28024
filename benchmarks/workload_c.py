"""Workload C: reload fan-out latency to N children.

N children each wait for a reload; one reload is sent to all of them and the
latency is measured until every child has seen it (``reload``), ``repeats``
times per process (median kept). For procman the time until
``handle.reload()`` returned is reported too (``reload_call``).

* bare: one task per child with its own Event; the reload sets every event.
* procman: ``procman.runnable`` children looping on ``ctx.tick(...)``,
  counting ``Control(RELOAD)``; the reload is ``manager.process_handle().reload()``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.measure import PhaseClock, settle

RunC = Callable[[int, int, PhaseClock], Awaitable[dict[str, Any]]]


class _Counter:
    """Counts children that saw the current reload; completes a future at N."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = 0
        self.running = 0
        self.done: asyncio.Future[None] | None = None

    def arm(self) -> asyncio.Future[None]:
        self.seen = 0
        self.done = asyncio.get_running_loop().create_future()
        return self.done

    def hit(self) -> None:
        self.seen += 1
        if self.seen == self.n and self.done is not None:
            self.done.set_result(None)


async def bare(n: int, repeats: int, clock: PhaseClock) -> dict[str, Any]:
    counter = _Counter(n)
    stop = False

    async def child(event: asyncio.Event) -> None:
        counter.running += 1
        while True:
            await event.wait()
            event.clear()
            if stop:
                return
            counter.hit()

    clock.start("setup")
    events = [asyncio.Event() for _ in range(n)]
    create = asyncio.get_running_loop().create_task
    tasks = [create(child(ev)) for ev in events]
    await settle(clock, lambda: counter.running == n)
    clock.stop()
    latencies = []
    for _ in range(repeats):
        done = counter.arm()
        t0 = time.perf_counter()
        for ev in events:
            ev.set()
        await done
        latencies.append(time.perf_counter() - t0)
    stop = True
    for ev in events:
        ev.set()
    await asyncio.wait(tasks)
    return {
        "reload": statistics.median(latencies),
        "reload_all": latencies,
    }


def _procman(observers_key: str) -> RunC:
    async def run(n: int, repeats: int, clock: PhaseClock) -> dict[str, Any]:
        from benchmarks.backends import OBSERVERS
        from procman import (
            ChildState,
            Control,
            ProcessManager,
            RuntimeContext,
            RuntimeControlMessage,
            runnable,
        )

        counter = _Counter(n)
        reload_msg = RuntimeControlMessage.RELOAD
        shutdown_msg = RuntimeControlMessage.SHUTDOWN

        async def child(ctx: RuntimeContext) -> None:
            loop = asyncio.get_running_loop()
            while True:
                op = await ctx.tick(loop.create_future())
                if isinstance(op, Control):
                    if op.message is shutdown_msg:
                        return
                    if op.message is reload_msg:
                        counter.hit()

        observers, cleanup = OBSERVERS[observers_key]()
        try:
            clock.start("setup")
            manager = ProcessManager("bench", observers=observers, shutdown_grace_period=60.0)
            for _ in range(n):
                manager.insert(runnable(child, "reloadable"))
            task = asyncio.get_running_loop().create_task(manager.process_start())

            def all_running() -> bool:
                return manager.snapshot().state_counts()[ChildState.RUNNING] == n

            await settle(clock, all_running)
            # ChildState.RUNNING is set before the child's first step; one more
            # iteration lets every child reach its first tick.
            await asyncio.sleep(0)
            clock.stop()
            handle = manager.process_handle()
            latencies = []
            calls = []
            for _ in range(repeats):
                done = counter.arm()
                t0 = time.perf_counter()
                await handle.reload()
                calls.append(time.perf_counter() - t0)
                await done
                latencies.append(time.perf_counter() - t0)
            await handle.shutdown()
            await task
            return {
                "reload": statistics.median(latencies),
                "reload_call": statistics.median(calls),
                "reload_all": latencies,
            }
        finally:
            cleanup()

    return run


RUNNERS: dict[str, RunC] = {
    "baseline": bare,
    "procman": _procman("none"),
    "procman-all": _procman("all"),
}
