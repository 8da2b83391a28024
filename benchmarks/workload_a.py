"""Workload A: start N idle children, wait until all run, stop them all.

Phases (seconds, wall clock of the event loop thread):

* ``start``: from before the first child object is built until every child's
  task has run its first step (the check itself is not timed);
* ``stop``: from asking for the shutdown until every child has ended.

Each function runs the workload once for one configuration and returns
extra facts for the report (for example how many loop iterations the start
took). "Graceful" configurations let every child return normally; the
peers that only cancel are marked so in their description.

The ``-gcfreeze`` variants call :func:`gc.freeze` once all children run
(between the timed phases, so the call itself is not timed) and
:func:`gc.unfreeze` after the stop: the long-lived objects made at start-up
are then no longer walked by the cyclic GC during the stop phase.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.measure import PhaseClock, settle

RunA = Callable[[int, PhaseClock], Awaitable[dict[str, Any]]]


def _freeze() -> dict[str, Any]:
    """``gc.freeze()`` after start-up; returns how many objects it froze."""
    gc.freeze()
    return {"frozen_objects": gc.get_freeze_count()}


async def baseline(n: int, clock: PhaseClock, freeze: bool = False) -> dict[str, Any]:
    """N tasks awaiting one shared Event; set it and wait for all tasks.

    ``freeze``: ``gc.freeze()`` once all run, ``gc.unfreeze()`` after the stop.
    """
    extra: dict[str, Any] = {}
    clock.start("start")
    event = asyncio.Event()
    running = 0

    async def child() -> None:
        nonlocal running
        running += 1
        await event.wait()

    create = asyncio.get_running_loop().create_task
    tasks = [create(child()) for _ in range(n)]
    yields = await settle(clock, lambda: running == n)
    clock.stop()
    if freeze:
        extra = _freeze()
    clock.start("stop")
    event.set()
    await asyncio.wait(tasks)
    clock.stop()
    if freeze:
        gc.unfreeze()
    return {"yields": yields, **extra}


async def baseline_gcfreeze(n: int, clock: PhaseClock) -> dict[str, Any]:
    """The baseline with ``gc.freeze()`` after start-up (see :func:`baseline`)."""
    return await baseline(n, clock, freeze=True)


async def taskgroup(n: int, clock: PhaseClock) -> dict[str, Any]:
    """asyncio.TaskGroup; children await one shared Event; set it and leave the group."""
    clock.start("start")
    event = asyncio.Event()
    running = 0

    async def child() -> None:
        nonlocal running
        running += 1
        await event.wait()

    async with asyncio.TaskGroup() as tg:
        for _ in range(n):
            tg.create_task(child())
        yields = await settle(clock, lambda: running == n)
        clock.stop()
        clock.start("stop")
        event.set()
    clock.stop()
    return {"yields": yields}


async def _forever(counter: list[int]) -> None:
    counter[0] += 1
    await asyncio.get_running_loop().create_future()  # own waiter: cancelling stays linear


async def aiotools_ptg(n: int, clock: PhaseClock) -> dict[str, Any]:
    """aiotools PersistentTaskGroup: children wait on their own future; shutdown() cancels."""
    import aiotools

    clock.start("start")
    counter = [0]
    async with aiotools.PersistentTaskGroup() as ptg:
        for _ in range(n):
            ptg.create_task(_forever(counter))
        yields = await settle(clock, lambda: counter[0] == n)
        clock.stop()
        clock.start("stop")
        await ptg.shutdown()
    clock.stop()
    return {"yields": yields, "graceful": False}


async def aiotools_supervisor(n: int, clock: PhaseClock) -> dict[str, Any]:
    """aiotools Supervisor: children wait on their own future; abort() cancels them
    and leaving the scope waits for them (aclose() would also cancel the host task)."""
    import aiotools

    clock.start("start")
    counter = [0]
    async with aiotools.Supervisor() as sv:
        for _ in range(n):
            sv.create_task(_forever(counter))
        yields = await settle(clock, lambda: counter[0] == n)
        clock.stop()
        clock.start("stop")
        sv.abort()
    clock.stop()
    return {"yields": yields, "graceful": False}


async def anyio_tg(n: int, clock: PhaseClock) -> dict[str, Any]:
    """anyio task group: children sleep_forever(); the group's cancel scope cancels them."""
    import anyio

    clock.start("start")
    running = 0

    async def child() -> None:
        nonlocal running
        running += 1
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(child)
        yields = await settle(clock, lambda: running == n)
        clock.stop()
        clock.start("stop")
        tg.cancel_scope.cancel()
    clock.stop()
    return {"yields": yields, "graceful": False}


async def mode_tree(n: int, clock: PhaseClock) -> dict[str, Any]:
    """mode-streaming: a root Service with N child Services, each with one task
    that waits until its service stops; ``root.stop()`` stops the tree."""
    from mode import Service

    counter = [0]

    class Child(Service):
        @Service.task
        async def _idle(self) -> None:
            counter[0] += 1
            await self.wait_until_stopped()

    clock.start("start")
    root = Service()
    for _ in range(n):
        root.add_dependency(Child())
    await root.start()
    yields = await settle(clock, lambda: counter[0] == n)
    clock.stop()
    clock.start("stop")
    await root.stop()
    clock.stop()
    return {"yields": yields}


async def mode_futures(n: int, clock: PhaseClock) -> dict[str, Any]:
    """mode-streaming: one Service, N ``add_future`` tasks waiting until it stops."""
    from mode import Service

    counter = [0]

    async def child(svc: Any) -> None:
        counter[0] += 1
        await svc.wait_until_stopped()

    clock.start("start")
    svc = Service()
    await svc.start()
    for _ in range(n):
        svc.add_future(child(svc))
    yields = await settle(clock, lambda: counter[0] == n)
    clock.stop()
    clock.start("stop")
    await svc.stop()
    clock.stop()
    return {"yields": yields}


def _procman(observers_key: str, freeze: bool = False) -> RunA:
    async def run(n: int, clock: PhaseClock) -> dict[str, Any]:
        from benchmarks.backends import OBSERVERS
        from procman import ChildState, ProcessManager
        from procman.builtin import IdleProcess

        observers, cleanup = OBSERVERS[observers_key]()
        try:
            clock.start("start")
            manager = ProcessManager("bench", observers=observers, shutdown_grace_period=60.0)
            for _ in range(n):
                manager.insert(IdleProcess())
            task = asyncio.get_running_loop().create_task(manager.process_start())

            def all_running() -> bool:
                return manager.snapshot().state_counts()[ChildState.RUNNING] == n

            yields = await settle(clock, all_running)
            clock.stop()
            extra = _freeze() if freeze else {}
            clock.start("stop")
            await manager.process_handle().shutdown()
            await task
            clock.stop()
            return {"yields": yields, **extra}
        finally:
            if freeze:
                gc.unfreeze()
            cleanup()

    return run


async def floor(n: int, clock: PhaseClock) -> dict[str, Any]:
    """Bare tasks on one shared Event, each wrapped by hand in a span, a counter
    increment and a log call (see :class:`benchmarks.backends.Floor`)."""
    from benchmarks.backends import Floor

    wiring = Floor()
    try:
        clock.start("start")
        event = asyncio.Event()
        running = 0

        async def child() -> None:
            nonlocal running
            run = wiring.enter("bench", "IdleProcess")
            running += 1
            try:
                await event.wait()
            finally:
                wiring.exit(run)

        create = asyncio.get_running_loop().create_task
        tasks = [create(child()) for _ in range(n)]
        yields = await settle(clock, lambda: running == n)
        clock.stop()
        clock.start("stop")
        event.set()
        await asyncio.wait(tasks)
        clock.stop()
        return {"yields": yields}
    finally:
        wiring.cleanup()


RUNNERS: dict[str, RunA] = {
    "baseline": baseline,
    "baseline-gcfreeze": baseline_gcfreeze,
    "taskgroup": taskgroup,
    "aiotools-ptg": aiotools_ptg,
    "aiotools-supervisor": aiotools_supervisor,
    "anyio": anyio_tg,
    "mode-tree": mode_tree,
    "mode-futures": mode_futures,
    "procman": _procman("none"),
    "procman-logging": _procman("logging"),
    "procman-logging-gcfreeze": _procman("logging", freeze=True),
    "procman-prometheus": _procman("prometheus"),
    "procman-otel": _procman("otel"),
    "procman-all": _procman("all"),
    "floor": floor,
}
