"""Workload B: one crash-looping child restarted with zero backoff.

The child raises at once on every run. Each configuration restarts it for a
fixed wall-clock ``duration``; the result is restarts per second and the
cost of one crash + restart. Every loop yields to the event loop once per
restart (procman's RestartSupervisor does so through its zero-delay
backoff timer; the hand-written loop with ``await asyncio.sleep(0)``, which
is what ``await asyncio.sleep(backoff)`` does with a zero backoff).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.measure import PhaseClock

RunB = Callable[[float, PhaseClock], Awaitable[dict[str, Any]]]


class CrashError(RuntimeError):
    """What the crash-looping child raises."""


async def crash() -> None:
    raise CrashError("crash")


def _result(restarts: int, elapsed: float) -> dict[str, Any]:
    return {
        "restarts": restarts,
        "restarts_per_s": restarts / elapsed if elapsed > 0 else 0.0,
        "us_per_restart": elapsed / restarts * 1e6 if restarts else None,
    }


async def bare_loop(duration: float, clock: PhaseClock) -> dict[str, Any]:
    """A hand-written restart loop: call, catch, count, yield, repeat."""
    stop = False
    restarts = 0

    async def supervise() -> None:
        nonlocal restarts
        while not stop:
            try:
                await crash()
            except Exception:
                restarts += 1
            await asyncio.sleep(0)

    clock.start("run")
    t0 = time.perf_counter()
    task = asyncio.get_running_loop().create_task(supervise())
    await asyncio.sleep(duration)
    stop = True
    elapsed = time.perf_counter() - t0
    count = restarts
    await task
    clock.stop()
    return _result(count, elapsed)


async def floor_loop(duration: float, clock: PhaseClock) -> dict[str, Any]:
    """The hand-written loop with a span, a counter increment and an ERROR log
    record (with the exception) per crash."""
    from benchmarks.backends import Floor

    wiring = Floor()
    stop = False
    restarts = 0

    async def supervise() -> None:
        nonlocal restarts
        while not stop:
            run = wiring.enter("bench", "crasher")
            try:
                await crash()
            except Exception as exc:
                wiring.exit(run, exc)
                restarts += 1
            else:
                wiring.exit(run)
            await asyncio.sleep(0)

    try:
        clock.start("run")
        t0 = time.perf_counter()
        task = asyncio.get_running_loop().create_task(supervise())
        await asyncio.sleep(duration)
        stop = True
        elapsed = time.perf_counter() - t0
        count = restarts
        await task
        clock.stop()
        return _result(count, elapsed)
    finally:
        wiring.cleanup()


def _procman(observers_key: str) -> RunB:
    async def run(duration: float, clock: PhaseClock) -> dict[str, Any]:
        from benchmarks.backends import OBSERVERS
        from procman import ProcessManager, Runnable, RuntimeGuard, RuntimeHandle
        from procman.builtin import RestartBackoff, RestartSupervisor

        class Crasher(Runnable):
            def __init__(self) -> None:
                self._guard = RuntimeGuard()

            async def process_start(self) -> None:
                raise CrashError("crash")

            def process_handle(self) -> RuntimeHandle:
                return self._guard.handle()

            def process_name(self) -> str:
                return "crasher"

        observers, cleanup = OBSERVERS[observers_key]()
        try:
            sup = RestartSupervisor(Crasher(), RestartBackoff(initial=0.0, max=0.0))
            manager = ProcessManager("bench", observers=observers, shutdown_grace_period=10.0)
            manager.insert(sup)
            clock.start("run")
            t0 = time.perf_counter()
            task = asyncio.get_running_loop().create_task(manager.process_start())
            await asyncio.sleep(duration)
            elapsed = time.perf_counter() - t0
            count = sup.restart_count
            await manager.process_handle().shutdown()
            await task
            clock.stop()
            return _result(count, elapsed)
        finally:
            cleanup()

    return run


RUNNERS: dict[str, RunB] = {
    "baseline": bare_loop,
    "procman": _procman("none"),
    "procman-logging": _procman("logging"),
    "procman-prometheus": _procman("prometheus"),
    "procman-otel": _procman("otel"),
    "procman-all": _procman("all"),
    "floor": floor_loop,
}
