"""Named regression tests for the hard cases (issue: reliability)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time

import pytest
from helpers import Recorder, SwallowsCancel, Worker, all_running, wait_until

from procman import ManagerStateError, ProcessControlHandler, ProcessManager, Runnable
from procman.builtin import IdleProcess
from procman.events import ProcessStarted, ReloadCompleted, ReloadRequested, ShutdownRequested
from procman.testing import wait_for_event, wait_for_state


class HangingReload(Runnable):
    def __init__(self) -> None:
        self.idle = IdleProcess()
        outer = self

        class Handle(ProcessControlHandler):
            async def shutdown(self) -> None:
                await outer.idle.process_handle().shutdown()

            async def reload(self) -> None:
                await asyncio.sleep(3600)

        self.handle = Handle()

    async def process_start(self) -> None:
        await self.idle.process_start()

    def process_handle(self) -> ProcessControlHandler:
        return self.handle


async def test_reload_handler_hanging_past_grace_period_is_cancelled() -> None:
    rec = Recorder()
    m = ProcessManager("root", shutdown_grace_period=0.1, observers=[rec])
    m.insert(HangingReload()).insert(Worker("ok"))
    task = asyncio.create_task(m.process_start())
    await wait_for_state(m, all_running, recorder=rec)
    t0 = time.monotonic()
    await asyncio.wait_for(m.process_handle().reload(), 5)
    assert time.monotonic() - t0 < 3
    (done,) = rec.of(ReloadCompleted)
    assert done.result == "timeout"
    await m.process_handle().shutdown()
    assert task.result() is None


async def test_reload_handler_raising_is_counted_not_fatal() -> None:
    class Bad(HangingReload):
        def __init__(self) -> None:
            super().__init__()

            async def boom() -> None:
                raise RuntimeError("bad reload")

            self.handle.reload = boom  # type: ignore[method-assign]

    rec = Recorder()
    m = ProcessManager("root", observers=[rec])
    m.insert(Bad())
    task = asyncio.create_task(m.process_start())
    await wait_for_state(m, all_running, recorder=rec)
    await m.process_handle().reload()
    (done,) = rec.of(ReloadCompleted)
    assert done.result == "error" and done.errors == 1
    assert not task.done()
    await m.process_handle().shutdown()
    await task


async def test_add_racing_with_shutdown_is_refused_or_run_never_lost() -> None:
    m = ProcessManager("root", observers=[])
    m.insert(IdleProcess())
    task = asyncio.create_task(m.process_start())
    await m.wait_started()
    added: list[Worker] = []
    refused = 0

    async def adder() -> None:
        nonlocal refused
        for i in range(200):
            w = Worker(f"w{i}")
            try:
                m.add(w)
                added.append(w)
            except ManagerStateError:
                refused += 1
            await asyncio.sleep(0.001)

    adding = asyncio.create_task(adder())
    await wait_until(lambda: len(added) >= 5)  # shut down while the adds are racing
    await asyncio.wait_for(m.process_handle().shutdown(), 5)
    await adding
    assert task.result() is None
    assert refused > 0 and len(added) + refused == 200
    # every accepted child ran and was stopped by the shutdown, none was dropped
    assert added and all(w.runs == 1 and w.stopped_gracefully for w in added)
    assert len(m) == 0


def test_keyboard_interrupt_in_child_propagates_out_of_the_loop() -> None:
    code = textwrap.dedent(
        """
        import asyncio
        from procman import ProcessManager, runnable

        async def boom(ctx):
            raise KeyboardInterrupt

        async def main():
            m = ProcessManager("root", observers=[])
            m.insert(runnable(boom))
            await m.process_start()

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            print("KeyboardInterrupt reached the caller")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert "KeyboardInterrupt reached the caller" in proc.stdout, proc.stderr


def test_system_exit_in_child_propagates_out_of_the_loop() -> None:
    code = textwrap.dedent(
        """
        import asyncio
        from procman import ProcessManager, runnable

        async def bye(ctx):
            raise SystemExit(7)

        async def main():
            m = ProcessManager("root", observers=[])
            m.insert(runnable(bye))
            await m.process_start()

        asyncio.run(main())
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 7, proc.stderr


async def test_observer_raising_on_every_event_is_skipped() -> None:
    class Always:
        def on_event(self, event: object) -> None:
            raise ValueError("always")

    m = ProcessManager("root", observers=[Always()])
    m.insert(Worker("a", exit_after=1)).insert(Worker("b", fail_after=1))
    with pytest.raises(RuntimeError, match="b failed"):
        await asyncio.wait_for(m.process_start(), 5)


async def test_many_children_added_and_finished_leave_no_bookkeeping() -> None:
    m = ProcessManager("root", observers=[])
    m.insert(IdleProcess())
    task = asyncio.create_task(m.process_start())
    await m.wait_started()
    for i in range(2000):
        m.add(Worker(f"w{i}", exit_after=1, period=0))
    await wait_until(lambda: len(m) == 1)
    assert len(m.snapshot().children) == 1
    await m.process_handle().shutdown()
    await task


async def test_nested_manager_with_stubborn_grandchild_reports_it_before_parent_gives_up() -> None:
    """Found by the property suite: parent and nested manager abandoned at the same instant,
    so the root returned while the subtree still had an unreported child."""
    release = asyncio.Event()

    rec = Recorder()
    inner = ProcessManager("inner", cancel_timeout=0.05)
    stubborn = SwallowsCancel(release)
    inner.insert(stubborn).insert(IdleProcess())
    root = ProcessManager("root", cancel_timeout=0.05, observers=[rec])
    root.insert(inner)
    task = asyncio.create_task(root.process_start())
    try:
        await wait_for_event(rec, ProcessStarted, count=3)  # inner and both leaves
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        abandoned = [e.path for e in rec.events if e.name == "procman.child.abandoned"]
        assert abandoned == ["root/inner/Stubborn"]  # the stubborn leaf, not the subtree
    finally:
        release.set()
        await asyncio.wait_for(stubborn.ended.wait(), 5)


async def test_manager_cancelled_twice_reports_the_stubborn_child_abandoned() -> None:
    """Found by the benchmark work: a second cancel left the child unreported, len() == 1."""
    release = asyncio.Event()

    rec = Recorder()
    m = ProcessManager("root", shutdown_grace_period=0.1, cancel_timeout=0.2, observers=[rec])
    stubborn = SwallowsCancel(release, "stubborn")
    m.insert(stubborn)
    task = asyncio.create_task(m.process_start())
    try:
        await wait_for_event(rec, ProcessStarted, child="stubborn")
        task.cancel()
        await wait_for_event(rec, ShutdownRequested)  # the first cancel was handled
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        assert len(m) == 0
        assert [e.path for e in rec.events if e.name == "procman.child.abandoned"] == [
            "root/stubborn"
        ]
    finally:
        release.set()
        await asyncio.wait_for(stubborn.ended.wait(), 5)


async def test_snapshot_without_observers_tells_starting_from_running() -> None:
    from procman import ChildState

    m = ProcessManager("root", observers=[])
    m.insert(IdleProcess("a")).insert(IdleProcess("b"))
    task = asyncio.create_task(m.process_start())
    await m.wait_started()
    await asyncio.sleep(0)  # the thing under test: one step later every coroutine has begun
    assert {c.state for c in m.snapshot().children} == {ChildState.RUNNING}
    assert m.snapshot().ready
    m.add(IdleProcess("late"))  # scheduled, its coroutine has not run yet
    states = {c.name: c.state for c in m.snapshot().children}
    assert states["late"] is ChildState.STARTING and not m.snapshot().ready
    await asyncio.sleep(0)  # the thing under test, as above
    assert m.snapshot().ready
    await m.process_handle().shutdown()
    await task


async def test_cancelled_reload_still_reports_completion() -> None:
    """Found while building the tracing backend: a cancelled reload() emitted no completion."""
    rec = Recorder()
    m = ProcessManager("root", observers=[rec])
    m.insert(HangingReload())
    task = asyncio.create_task(m.process_start())
    await wait_for_state(m, all_running, recorder=rec)
    reload = asyncio.create_task(m.process_handle().reload())
    await wait_for_event(rec, ReloadRequested)  # the reload is under way
    reload.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reload
    (done,) = rec.of(ReloadCompleted)
    assert done.result == "cancelled"
    await m.process_handle().shutdown()
    await task
