"""ProcessManager behaviour: the seed crate's integration scenarios and beyond."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from helpers import Recorder, SwallowsCancel, Worker, all_running, wait_until

from procman import (
    ChildState,
    Control,
    ManagerPhase,
    ManagerStateError,
    Next,
    ProcessControlHandler,
    ProcessManager,
    ProcessManagerBuilder,
    ProcmanError,
    Runnable,
    RuntimeContext,
    RuntimeControlMessage,
    runnable,
)
from procman.builtin import IdleProcess
from procman.events import (
    ProcessAbandoned,
    ProcessCancelled,
    ProcessFailed,
    ProcessStarted,
    ProcessStopTimedOut,
    ShutdownCompleted,
    ShutdownRequested,
)
from procman.testing import wait_for_child_state, wait_for_event, wait_for_state


def manager(*children: Runnable, name: str = "root", **kw: object) -> ProcessManager:
    kw.setdefault("observers", [])
    m = ProcessManager(name, **kw)  # type: ignore[arg-type]
    for child in children:
        m.insert(child)
    return m


async def test_runnable_alone_runs_and_stops_via_its_handle() -> None:
    w = Worker()
    task = asyncio.create_task(w.process_start())
    await w.started.wait()
    await w.process_handle().shutdown()
    await asyncio.wait_for(task, 5)
    assert w.stopped_gracefully


async def test_empty_manager_returns_immediately() -> None:
    assert await asyncio.wait_for(manager().process_start(), 5) is None


async def test_children_exiting_normally_end_the_manager() -> None:
    a, b = Worker("a", exit_after=2), Worker("b", exit_after=5)
    m = manager(a, b)
    assert await asyncio.wait_for(m.process_start(), 5) is None
    assert a.ticks == 2 and b.ticks == 5
    assert m.phase is ManagerPhase.STOPPED


async def test_idle_process_keeps_manager_alive_until_shutdown() -> None:
    rec = Recorder()
    m = manager(IdleProcess(), observers=[rec])
    task = asyncio.create_task(m.process_start())
    await wait_for_child_state(m, "IdleProcess", ChildState.RUNNING, recorder=rec)
    assert not task.done() and m.phase is ManagerPhase.RUNNING
    await asyncio.wait_for(m.process_handle().shutdown(), 5)
    assert task.done() and task.result() is None


async def test_shutdown_waits_for_children() -> None:
    finished = []

    class Slow(Runnable):
        def __init__(self) -> None:
            self.idle = IdleProcess()

        async def process_start(self) -> None:
            await self.idle.process_start()
            await asyncio.sleep(0.1)  # cleanup work after the shutdown request
            finished.append(True)

        def process_handle(self) -> ProcessControlHandler:
            return self.idle.process_handle()

    rec = Recorder()
    m = manager(Slow(), Slow(), observers=[rec])
    task = asyncio.create_task(m.process_start())
    await wait_for_event(rec, ProcessStarted, count=2)
    await asyncio.wait_for(m.process_handle().shutdown(), 5)
    assert finished == [True, True]
    assert task.done()


async def test_insert_before_start_and_add_while_running() -> None:
    m = manager(IdleProcess("first"))
    task = asyncio.create_task(m.process_start())
    await m.wait_started()
    with pytest.raises(ManagerStateError, match=r"use add\(\)"):
        m.insert(IdleProcess())
    second = Worker("second")
    m.add(second)
    await asyncio.wait_for(second.started.wait(), 5)
    assert len(m) == 2
    await m.process_handle().shutdown()
    await task
    assert second.stopped_gracefully


async def test_add_before_start_raises_and_names_insert() -> None:
    with pytest.raises(ManagerStateError, match=r"use insert\(\)"):
        manager().add(IdleProcess())


async def test_add_after_end_raises() -> None:
    m = manager(Worker(exit_after=1))
    await m.process_start()
    with pytest.raises(ManagerStateError, match="has ended"):
        m.add(IdleProcess())


async def test_add_during_shutdown_raises() -> None:
    w = Worker(ignore_shutdown=True)
    m = manager(w, shutdown_grace_period=0.2)
    task = asyncio.create_task(m.process_start())
    await w.started.wait()
    m.request_shutdown()
    with pytest.raises(ManagerStateError, match="shutting down"):
        m.add(IdleProcess())
    await asyncio.wait_for(task, 5)


async def test_non_runnable_is_rejected_at_the_call() -> None:
    with pytest.raises(TypeError, match=r"procman\.Runnable"):
        manager().insert(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pre_insert"):
        ProcessManagerBuilder().pre_insert("nope")  # type: ignore[arg-type]


async def test_first_error_propagates_same_object_with_note() -> None:
    err = ValueError("boom")
    bad = Worker("bad", fail_after=2, exc=err)
    good = Worker("good")
    m = manager(bad, good)
    with pytest.raises(ValueError) as info:
        await asyncio.wait_for(m.process_start(), 5)
    assert info.value is err
    assert "procman: raised by process root/bad" in err.__notes__
    assert good.stopped_gracefully


async def test_only_first_error_is_raised() -> None:
    first = Worker("first", fail_after=1, exc=KeyError("first"))

    class FailsOnShutdown(Worker):
        async def process_start(self) -> None:
            await self.guard.block_until_shutdown()
            raise RuntimeError("second")

    m = manager(first, FailsOnShutdown("second"))
    with pytest.raises(KeyError):
        await asyncio.wait_for(m.process_start(), 5)


async def test_failure_during_shutdown_counts_as_error() -> None:
    class FailsOnShutdown(Worker):
        async def process_start(self) -> None:
            await self.guard.block_until_shutdown()
            raise RuntimeError("failed while stopping")

    rec = Recorder()
    m = manager(FailsOnShutdown("x"), observers=[rec])
    task = asyncio.create_task(m.process_start())
    await wait_for_event(rec, ProcessStarted, child="x")
    await m.process_handle().shutdown()
    with pytest.raises(RuntimeError, match="failed while stopping"):
        await task


async def test_grace_period_cancels_stuck_children() -> None:
    rec = Recorder()
    stuck = Worker("stuck", ignore_shutdown=True)
    polite = Worker("polite")
    m = ProcessManager("root", shutdown_grace_period=0.2, observers=[rec])
    m.insert(stuck).insert(polite)
    task = asyncio.create_task(m.process_start())
    await stuck.started.wait()
    t0 = time.monotonic()
    await asyncio.wait_for(m.process_handle().shutdown(), 5)
    elapsed = time.monotonic() - t0
    assert 0.15 <= elapsed < 3
    assert task.result() is None
    assert polite.stopped_gracefully and not stuck.stopped_gracefully
    timeouts = rec.of(ProcessStopTimedOut)
    assert [e.child for e in timeouts] == ["stuck"]
    cancelled = [e for e in rec.of(ProcessCancelled) if e.child == "stuck"]
    assert len(cancelled) == 1 and cancelled[0].outcome == "timeout"
    (done,) = rec.of(ShutdownCompleted)
    assert done.forced == 1


async def test_configurable_grace_period_accepts_timedelta() -> None:
    m = ProcessManagerBuilder().shutdown_grace_period(timedelta(milliseconds=100)).build()
    assert m.shutdown_grace_period == pytest.approx(0.1)


async def test_zero_grace_period_cancels_at_once() -> None:
    stuck = Worker("stuck", ignore_shutdown=True)
    m = manager(stuck, shutdown_grace_period=0)
    task = asyncio.create_task(m.process_start())
    await stuck.started.wait()
    await asyncio.wait_for(m.process_handle().shutdown(), 2)
    assert task.result() is None


async def test_child_swallowing_cancellation_is_abandoned_and_manager_returns() -> None:
    rec = Recorder()
    release = asyncio.Event()

    m = ProcessManager("root", shutdown_grace_period=0.05, cancel_timeout=0.1, observers=[rec])
    stubborn = SwallowsCancel(release)
    m.insert(stubborn)
    task = asyncio.create_task(m.process_start())
    await wait_for_event(rec, ProcessStarted, child="Stubborn")
    await asyncio.wait_for(m.process_handle().shutdown(), 5)
    assert task.result() is None
    assert len(rec.of(ProcessAbandoned)) == 1
    release.set()
    await asyncio.wait_for(stubborn.ended.wait(), 5)
    # Exactly one terminal event even though the task eventually ends.
    terminal = [
        e
        for e in rec.events
        if e.name in {"procman.child.abandoned", "procman.child.cancelled", "procman.child.stopped"}
    ]
    assert len(terminal) == 1


async def test_shutdown_before_start_is_not_lost() -> None:
    w = Worker()
    m = manager(w)
    await asyncio.wait_for(m.process_handle().shutdown(), 1)
    assert await asyncio.wait_for(m.process_start(), 1) is None
    assert w.runs == 0


async def test_errors_beat_cancellation() -> None:
    err = OSError("disk gone")
    failing = Worker("failing", fail_after=1, exc=err)
    stuck = Worker("stuck", ignore_shutdown=True)
    m = manager(failing, stuck, shutdown_grace_period=30)
    task = asyncio.create_task(m.process_start())
    await wait_until(lambda: m.phase is ManagerPhase.STOPPING)
    task.cancel()
    with pytest.raises(OSError) as info:
        await asyncio.wait_for(task, 5)
    assert info.value is err


async def test_outside_cancellation_without_error_raises_cancelled() -> None:
    rec = Recorder()
    m = manager(IdleProcess(), Worker(), observers=[rec])
    task = asyncio.create_task(m.process_start())
    await wait_for_state(m, all_running, recorder=rec)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert m.phase is ManagerPhase.STOPPED


async def test_parallel_reload_reaches_every_child_concurrently() -> None:
    started = []
    gate = asyncio.Event()

    class SlowReload(ProcessControlHandler):
        def __init__(self, idle: IdleProcess) -> None:
            self.idle = idle

        async def shutdown(self) -> None:
            await self.idle.process_handle().shutdown()

        async def reload(self) -> None:
            started.append(1)
            if len(started) == 3:
                gate.set()
            await asyncio.wait_for(gate.wait(), 5)  # only passes if all run at once

    class R(Runnable):
        def __init__(self) -> None:
            self.idle = IdleProcess()
            self.h = SlowReload(self.idle)

        async def process_start(self) -> None:
            await self.idle.process_start()

        def process_handle(self) -> ProcessControlHandler:
            return self.h

    rec = Recorder()
    m = manager(R(), R(), R(), observers=[rec])
    task = asyncio.create_task(m.process_start())
    await wait_for_state(m, all_running, recorder=rec)
    await asyncio.wait_for(m.process_handle().reload(), 3)
    assert len(started) == 3
    await m.process_handle().shutdown()
    await task


async def test_reload_of_guard_workers_is_delivered() -> None:
    ws = [Worker(f"w{i}") for i in range(3)]
    m = manager(*ws)
    task = asyncio.create_task(m.process_start())
    await asyncio.gather(*(w.started.wait() for w in ws))
    await m.process_handle().reload()
    await wait_until(lambda: all(w.reloads == 1 for w in ws))
    await m.process_handle().shutdown()
    await task


async def test_nested_managers_shutdown_and_failure_propagation() -> None:
    leaf = Worker("leaf", fail_after=3, exc=LookupError("deep"))
    inner = manager(leaf, Worker("sibling"), name="inner")
    outer_worker = Worker("outer-worker")
    root = manager(inner, outer_worker, name="root")
    with pytest.raises(LookupError) as info:
        await asyncio.wait_for(root.process_start(), 5)
    assert info.value.__notes__ == ["procman: raised by process root/inner/leaf"]
    assert outer_worker.stopped_gracefully


async def test_nested_manager_exits_cleanly_while_tree_keeps_running() -> None:
    inner = manager(Worker("short", exit_after=2), name="inner")
    idle = IdleProcess()
    root = manager(inner, idle)
    task = asyncio.create_task(root.process_start())
    await wait_until(lambda: inner.phase is ManagerPhase.STOPPED)
    assert not task.done()
    await root.process_handle().shutdown()
    assert task.result() is None


async def test_multiple_independent_trees() -> None:
    a = manager(Worker("a", fail_after=2), name="a")
    b = manager(Worker("b"), name="b")
    ta = asyncio.create_task(a.process_start())
    tb = asyncio.create_task(b.process_start())
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(ta, 5)
    assert not tb.done()
    await b.process_handle().shutdown()
    assert tb.result() is None


async def test_nested_paths_and_observer_inheritance() -> None:
    rec = Recorder()
    inner = ProcessManager("db", observers=[])
    inner.insert(Worker("consumer-3", exit_after=1))
    root = ProcessManager("root", observers=[rec])
    root.insert(inner)
    await asyncio.wait_for(root.process_start(), 5)
    paths = {e.path for e in rec.events}
    assert "root/db/consumer-3" in paths and "root/db" in paths
    assert inner.path == "root/db"


async def test_child_shutting_down_its_own_manager_does_not_deadlock() -> None:
    async def quitter(ctx: RuntimeContext) -> None:
        await wait_for_state(root, all_running, recorder=rec)  # the whole tree is up
        await root.process_handle().shutdown()  # returns at once: we are inside
        match await ctx.tick(asyncio.sleep(5)):
            case Control(RuntimeControlMessage.SHUTDOWN):
                return
            case _:
                raise AssertionError("expected shutdown")

    rec = Recorder()
    root = manager(runnable(quitter), IdleProcess(), observers=[rec])
    await asyncio.wait_for(root.process_start(), 3)


async def test_auto_cleanup_drops_finished_children() -> None:
    m = manager(IdleProcess())
    task = asyncio.create_task(m.process_start())
    await m.wait_started()
    for i in range(100):
        m.add(Worker(f"short-{i}", exit_after=1, period=0))
    await wait_until(lambda: len(m) == 1)
    assert len(m.snapshot().children) == 1
    await m.process_handle().shutdown()
    await task


async def test_without_auto_cleanup_finished_children_stay_visible() -> None:
    m = manager(IdleProcess(), auto_cleanup=False)
    task = asyncio.create_task(m.process_start())
    await m.wait_started()
    m.add(Worker("short", exit_after=1, period=0))
    await wait_until(lambda: len(m) == 1)
    states = {c.name: c.state for c in m.snapshot().children}
    assert states["short"] is ChildState.STOPPED
    await m.process_handle().shutdown()
    await task


async def test_manager_can_be_started_again() -> None:
    w = Worker("w", exit_after=1)
    m = manager(w)
    await m.process_start()
    await m.process_start()
    assert w.runs == 2


async def test_starting_twice_concurrently_is_an_error() -> None:
    m = manager(IdleProcess())
    task = asyncio.create_task(m.process_start())
    await m.wait_started()
    with pytest.raises(ManagerStateError, match="already running"):
        await m.process_start()
    await m.process_handle().shutdown()
    await task


async def test_shutdown_from_many_tasks_concurrently() -> None:
    ws = [Worker(f"w{i}") for i in range(5)]
    m = manager(*ws)
    task = asyncio.create_task(m.process_start())
    await asyncio.gather(*(w.started.wait() for w in ws))
    await asyncio.wait_for(asyncio.gather(*(m.process_handle().shutdown() for _ in range(50))), 5)
    assert task.result() is None


async def test_failure_event_and_shutdown_reason() -> None:
    rec = Recorder()
    err = ValueError("x")
    m = ProcessManager("root", observers=[rec])
    m.insert(Worker("bad", fail_after=1, exc=err)).insert(IdleProcess("idle"))
    with pytest.raises(ValueError):
        await m.process_start()
    (failed,) = rec.of(ProcessFailed)
    assert failed.exception is err and failed.error_type == "ValueError"
    (requested,) = rec.of(ShutdownRequested)
    assert requested.reason == "failure"


async def test_procman_error_hierarchy() -> None:
    assert issubclass(ManagerStateError, ProcmanError)


async def test_runtime_context_function_runnable() -> None:
    seen: list[object] = []

    async def fn(ctx: RuntimeContext) -> None:
        while True:
            match await ctx.tick(asyncio.sleep(0.01)):
                case Next():
                    seen.append("tick")
                case Control(RuntimeControlMessage.SHUTDOWN):
                    seen.append("bye")
                    return
                case Control(msg):
                    seen.append(msg)

    r = runnable(fn)
    assert r.process_name() == "fn"
    m = manager(r)
    task = asyncio.create_task(m.process_start())
    await wait_until(lambda: "tick" in seen)
    await m.process_handle().shutdown()
    await task
    assert seen[-1] == "bye"


async def test_wait_started_then_add() -> None:
    m = manager(IdleProcess())
    task = asyncio.create_task(m.process_start())
    await asyncio.wait_for(m.wait_started(), 5)
    w = Worker("late")
    m.add(w)
    await asyncio.wait_for(w.started.wait(), 5)
    await m.process_handle().shutdown()
    await task
    await asyncio.wait_for(m.wait_started(), 1)  # not waiting once it has run
