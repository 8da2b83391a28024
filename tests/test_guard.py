"""RuntimeGuard / RuntimeTicker / RuntimeHandle semantics."""

from __future__ import annotations

import asyncio

import pytest

from procman import (
    Control,
    Custom,
    Next,
    ProcessControlHandler,
    RuntimeControlMessage,
    RuntimeGuard,
    RuntimeHandle,
)
from procman.testing import wait_until


async def test_tick_returns_next_when_awaitable_finishes_first() -> None:
    guard = RuntimeGuard()
    ticker = guard.runtime_ticker()
    assert await ticker.tick(asyncio.sleep(0, result=42)) == Next(42)


async def test_tick_returns_control_and_cancels_the_awaitable() -> None:
    guard = RuntimeGuard()
    ticker = guard.runtime_ticker()
    cancelled = asyncio.Event()
    waiting = asyncio.Event()

    async def slow() -> None:
        try:
            waiting.set()
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def send_later() -> None:
        await waiting.wait()  # the ticker is inside slow()
        await guard.handle().shutdown()

    sender = asyncio.create_task(send_later())
    op = await asyncio.wait_for(ticker.tick(slow()), 5)
    await sender
    assert op == Control(RuntimeControlMessage.SHUTDOWN)
    assert cancelled.is_set()


async def test_messages_sent_before_ticker_are_kept_in_order() -> None:
    guard = RuntimeGuard()
    handle = guard.handle()
    await handle.custom("a")
    await handle.reload()
    await handle.control(Custom({"b": 1}))
    await handle.shutdown()
    ticker = guard.runtime_ticker()
    got = [await ticker.tick(asyncio.sleep(60)) for _ in range(4)]
    assert got == [
        Control(Custom("a")),
        Control(RuntimeControlMessage.RELOAD),
        Control(Custom({"b": 1})),
        Control(RuntimeControlMessage.SHUTDOWN),
    ]


async def test_match_patterns_from_the_design_work() -> None:
    guard = RuntimeGuard()
    await guard.handle().custom(7)
    ticker = guard.runtime_ticker()
    match await ticker.tick(asyncio.sleep(60)):
        case Next():
            pytest.fail("expected a control message")
        case Control(RuntimeControlMessage.SHUTDOWN):
            pytest.fail("wrong message")
        case Control(Custom(payload)):
            assert payload == 7


async def test_queued_message_closes_coroutine_without_warning(
    recwarn: pytest.WarningsRecorder,
) -> None:
    guard = RuntimeGuard()
    guard.send_nowait(RuntimeControlMessage.RELOAD)
    op = await guard.runtime_ticker().tick(asyncio.sleep(1))
    assert op == Control(RuntimeControlMessage.RELOAD)
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


async def test_next_wins_and_message_stays_queued() -> None:
    guard = RuntimeGuard()
    ticker = guard.runtime_ticker()
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    fut.set_result(5)
    assert await ticker.tick(fut) == Next(5)
    guard.send_nowait(RuntimeControlMessage.RELOAD)
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    done.set_result(6)
    # The message was queued first, so it wins now.
    assert await ticker.tick(done) == Control(RuntimeControlMessage.RELOAD)


async def test_exception_of_awaitable_propagates() -> None:
    ticker = RuntimeGuard().runtime_ticker()

    async def boom() -> None:
        raise ValueError("x")

    with pytest.raises(ValueError):
        await ticker.tick(boom())


async def test_start_shutdown_start_again() -> None:
    guard = RuntimeGuard()
    assert not guard.is_running()
    ticker = guard.runtime_ticker()
    assert guard.is_running()
    await guard.handle().shutdown()
    assert await ticker.tick(asyncio.sleep(60)) == Control(RuntimeControlMessage.SHUTDOWN)
    assert not guard.is_running()
    ticker2 = guard.runtime_ticker()
    assert guard.is_running()
    assert await ticker2.tick(asyncio.sleep(0, result="again")) == Next("again")


async def test_block_until_shutdown_ignores_other_messages() -> None:
    guard = RuntimeGuard()
    task = asyncio.create_task(guard.block_until_shutdown())
    await wait_until(guard.is_running)
    guard.send_nowait(RuntimeControlMessage.RELOAD)
    guard.send_nowait(Custom(1))
    await asyncio.sleep(0.01)  # the thing under test: these messages do not end it
    assert not task.done()
    guard.send_nowait(RuntimeControlMessage.SHUTDOWN)
    await asyncio.wait_for(task, 5)
    assert not guard.is_running()


async def test_cancelling_tick_cancels_awaitable() -> None:
    ticker = RuntimeGuard().runtime_ticker()
    inner = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(ticker.tick(inner))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert inner.cancelled()


def test_handle_is_a_control_handler_and_stable() -> None:
    guard = RuntimeGuard()
    assert isinstance(guard.handle(), ProcessControlHandler)
    assert guard.handle() is guard.handle()


def test_handle_subclass_overriding_shutdown_is_awaited_not_bypassed() -> None:
    class Custom_(RuntimeHandle):
        async def shutdown(self) -> None:  # pragma: no cover - not called here
            pass

    guard = RuntimeGuard()
    assert RuntimeHandle(guard).control_nowait(RuntimeControlMessage.SHUTDOWN)
    assert not Custom_(guard).control_nowait(RuntimeControlMessage.SHUTDOWN)


# -- a plain future is raced with no second future: a message cancels it ----------
async def test_a_message_cancels_the_plain_future_being_ticked_on() -> None:
    guard = RuntimeGuard()
    ticker = guard.runtime_ticker()
    loop = asyncio.get_running_loop()
    for _ in range(3):  # the guard is reusable after each delivery
        work: asyncio.Future[int] = loop.create_future()
        task = asyncio.create_task(ticker.tick(work))
        await asyncio.sleep(0)  # the task awaits work now
        guard.send_nowait(RuntimeControlMessage.RELOAD)
        assert work.cancelled()  # at once, by the sender
        assert await task == Control(RuntimeControlMessage.RELOAD)
    later: asyncio.Future[int] = loop.create_future()
    later.set_result(3)
    assert await ticker.tick(later) == Next(3)


async def test_a_plain_future_cancelled_by_its_owner_propagates_and_keeps_messages() -> None:
    guard = RuntimeGuard()
    ticker = guard.runtime_ticker()
    work: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(ticker.tick(work))
    await asyncio.sleep(0)
    work.cancel()  # its owner, not a message
    guard.send_nowait(RuntimeControlMessage.RELOAD)  # arrives after: stays queued
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await ticker.tick(asyncio.sleep(60)) == Control(RuntimeControlMessage.RELOAD)


async def test_a_task_cancelled_while_a_message_wakes_it_is_cancelled_and_the_message_kept() -> (
    None
):
    guard = RuntimeGuard()
    ticker = guard.runtime_ticker()
    work: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(ticker.tick(work))
    await asyncio.sleep(0)
    guard.send_nowait(RuntimeControlMessage.SHUTDOWN)
    task.cancel()  # in the same loop iteration: the cancellation wins
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await ticker.tick(asyncio.sleep(60)) == Control(RuntimeControlMessage.SHUTDOWN)


async def test_a_plain_future_done_before_the_message_gives_next_and_keeps_the_message() -> None:
    guard = RuntimeGuard()
    ticker = guard.runtime_ticker()
    work: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(ticker.tick(work))
    await asyncio.sleep(0)
    work.set_result(8)
    guard.send_nowait(RuntimeControlMessage.RELOAD)  # the work finished first
    assert await task == Next(8)
    assert await ticker.tick(asyncio.sleep(60)) == Control(RuntimeControlMessage.RELOAD)


async def test_a_future_subclass_is_raced_with_a_waiter_and_not_cancelled_by_the_sender() -> None:
    class Work(asyncio.Future[int]):
        pass

    guard = RuntimeGuard()
    ticker = guard.runtime_ticker()
    work = Work()
    task = asyncio.create_task(ticker.tick(work))
    await asyncio.sleep(0)
    guard.send_nowait(RuntimeControlMessage.RELOAD)
    assert not work.cancelled()  # the ticker cancels it when it wakes, as for a task
    assert await task == Control(RuntimeControlMessage.RELOAD)
    assert work.cancelled()
