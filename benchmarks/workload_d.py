"""Workload D: restart storm, a ONE_FOR_ALL group of N children, one fails.

Each configuration starts N idle children, waits until all run, then makes
one child (the middle one) fail, ``repeats`` times in the same tree. One
``storm`` is the time from that failure until every child is running again:
the others stopped gracefully one at a time in reverse start order (the OTP
rule procman follows), then all N started again with zero backoff. "Running
again" is the children's own signal: the last of the N restarted runs
resolves a future when its coroutine starts (no events needed, so every
observer configuration is measured the same way).

Metrics: ``storm`` (median of the repeats, seconds), ``storm_min``,
``storm_max``; the baseline also reports ``storm_concurrent``, the same
storm with every other child asked to stop at once (no order), the floor
of any one_for_all restart.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.measure import PhaseClock, settle

RunD = Callable[[int, int, PhaseClock], Awaitable[dict[str, Any]]]


class CrashError(RuntimeError):
    """What the failing child raises."""


class _Count:
    """How many runs started; resolves ``done`` when ``target`` is reached."""

    __slots__ = ("done", "started", "target")

    def __init__(self) -> None:
        self.started = 0
        self.target = 0
        self.done: asyncio.Future[None] | None = None

    def expect(self, more: int) -> asyncio.Future[None]:
        self.target = self.started + more
        done = self.done = asyncio.get_running_loop().create_future()
        return done

    def bump(self) -> None:
        self.started += 1
        if self.started == self.target and self.done is not None and not self.done.done():
            self.done.set_result(None)


def _summary(storms: list[float], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "storm": statistics.median(storms),
        "storm_min": min(storms),
        "storm_max": max(storms),
        "storms": len(storms),
    }
    out.update(extra or {})
    return out


async def baseline(n: int, repeats: int, clock: PhaseClock) -> dict[str, Any]:
    """A hand-written one_for_all: on a failure, stop the others one at a time in
    reverse start order (await each), then start all N again; the same storm
    with every other child stopped at once is ``storm_concurrent``."""
    loop = asyncio.get_running_loop()
    count = _Count()
    stops: list[asyncio.Future[None]] = [loop.create_future() for _ in range(n)]
    failed: asyncio.Future[int] | None = None

    async def child(i: int) -> None:
        count.bump()
        stop = stops[i] = loop.create_future()
        await stop  # raises CrashError when the test fails this child

    def on_done(task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        if failed is not None and not failed.done():
            failed.set_result(tasks.index(task))

    def start_all() -> list[asyncio.Task[None]]:
        started = [loop.create_task(child(i)) for i in range(n)]
        for t in started:
            t.add_done_callback(on_done)
        return started

    async def storm(victim: int, ordered: bool) -> float:
        nonlocal failed, tasks
        failed = loop.create_future()
        again = count.expect(n)
        t0 = time.perf_counter()
        stops[victim].set_exception(CrashError("storm"))
        index = await failed
        if ordered:
            for j in range(n - 1, -1, -1):
                if j != index:
                    stops[j].set_result(None)
                    await tasks[j]
        else:
            for j in range(n):
                if j != index:
                    stops[j].set_result(None)
            await asyncio.wait(tasks)
        tasks = start_all()
        await again
        return time.perf_counter() - t0

    clock.start("run")
    first = count.expect(n)
    tasks = start_all()
    await first
    await settle(clock, lambda: True)
    storms = [await storm(n // 2, ordered=True) for _ in range(repeats)]
    concurrent = [await storm(n // 2, ordered=False) for _ in range(repeats)]
    for s in stops:
        if not s.done():
            s.set_result(None)
    await asyncio.wait(tasks)
    clock.stop()
    return _summary(storms, {"storm_concurrent": statistics.median(concurrent)})


def _procman(observers_key: str) -> RunD:
    async def run(n: int, repeats: int, clock: PhaseClock) -> dict[str, Any]:
        from benchmarks.backends import OBSERVERS
        from procman import (
            ProcessControlHandler,
            ProcessManager,
            Runnable,
            RuntimeControlMessage,
            Strategy,
        )
        from procman.builtin import RestartBackoff

        count = _Count()

        class Member(Runnable, ProcessControlHandler):
            """An idle child (as IdleProcess: its own handle, told synchronously) that
            counts its runs; ``crash()`` fails the current run."""

            __slots__ = ("_name", "_stop", "_waiter")

            def __init__(self, name: str) -> None:
                self._name = name
                self._stop = False
                self._waiter: asyncio.Future[None] | None = None

            async def process_start(self) -> None:
                count.bump()
                if not self._stop:
                    waiter = self._waiter = asyncio.get_running_loop().create_future()
                    try:
                        await waiter
                    finally:
                        self._waiter = None
                self._stop = False

            def process_handle(self) -> Member:
                return self

            def process_name(self) -> str:
                return self._name

            async def shutdown(self) -> None:
                self.control_nowait(RuntimeControlMessage.SHUTDOWN)

            async def reload(self) -> None:
                pass

            def control_nowait(self, message: RuntimeControlMessage) -> bool:
                if message is RuntimeControlMessage.SHUTDOWN:
                    self._stop = True
                    if self._waiter is not None and not self._waiter.done():
                        self._waiter.set_result(None)
                return True

            def crash(self) -> None:
                waiter = self._waiter
                assert waiter is not None and not waiter.done(), "the child is not running"
                waiter.set_exception(CrashError("storm"))

        observers, cleanup = OBSERVERS[observers_key]()
        try:
            clock.start("run")
            manager = ProcessManager(
                "bench",
                observers=observers,
                shutdown_grace_period=60.0,
                strategy=Strategy.ONE_FOR_ALL,
                max_restarts=repeats + 1,
                within=3600.0,
                backoff=RestartBackoff(initial=0.0, max=0.0),
            )
            members = [Member(f"m{i}") for i in range(n)]
            for m in members:
                manager.insert(m)
            first = count.expect(n)
            task = asyncio.get_running_loop().create_task(manager.process_start())
            await first
            await settle(clock, lambda: True)
            storms = []
            for _ in range(repeats):
                again = count.expect(n)
                t0 = time.perf_counter()
                members[n // 2].crash()
                await again
                storms.append(time.perf_counter() - t0)
                await asyncio.sleep(0)  # let the manager finish its bookkeeping
            await manager.process_handle().shutdown()
            await task
            clock.stop()
            return _summary(storms)
        finally:
            cleanup()

    return run


RUNNERS: dict[str, RunD] = {
    "baseline": baseline,
    "procman": _procman("none"),
    "procman-logging": _procman("logging"),
    "procman-all": _procman("all"),
}
