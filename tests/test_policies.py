"""Supervision policies: restart types, strategies, intensity, readiness, order, significance."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from procman import (
    ChildState,
    Control,
    ProcessManager,
    ProcessManagerBuilder,
    ReadyTimeoutError,
    Restart,
    RestartBackoff,
    RestartIntensityExceeded,
    RuntimeContext,
    RuntimeControlMessage,
    Strategy,
    runnable,
)
from procman.events import (
    LifecycleEvent,
    ProcessReady,
    ProcessRestarted,
    RestartCompleted,
    RestartRequested,
    RestartScheduled,
)

NO_DELAY = RestartBackoff(initial=0, max=0)


class Rec:
    def __init__(self) -> None:
        self.events: list[LifecycleEvent] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def on_event(self, event: LifecycleEvent) -> None:
        self.events.append(event)

    def of(self, cls: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]


class Script:
    """Records what children do, and lets a test wait for it."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self._cond = asyncio.Condition()

    async def note(self, entry: str) -> None:
        async with self._cond:
            self.log.append(entry)
            self._cond.notify_all()

    async def wait(self, pred: Callable[[list[str]], bool], timeout: float = 10) -> None:
        async def _wait() -> None:
            async with self._cond:
                await self._cond.wait_for(lambda: pred(self.log))

        try:
            await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"condition not met; log: {self.log}") from None

    def count(self, entry: str) -> int:
        return self.log.count(entry)


def kid(
    script: Script,
    name: str,
    *,
    fail_runs: int = 0,
    return_runs: int = 0,
    ready: bool = False,
    ready_gate: asyncio.Event | None = None,
    stop_delay: float = 0.0,
) -> Any:
    """A child: fails its first ``fail_runs`` runs, returns its next ``return_runs`` runs."""
    runs = 0

    async def body(ctx: RuntimeContext) -> None:
        nonlocal runs
        runs += 1
        run = runs
        await script.note(f"start:{name}")
        if ready_gate is not None:
            await ready_gate.wait()
        if ready:
            ctx.ready()
            await script.note(f"ready:{name}")
        if run <= fail_runs:
            await script.note(f"fail:{name}")
            raise RuntimeError(f"{name} run {run} failed")
        if run <= fail_runs + return_runs:
            await script.note(f"return:{name}")
            return
        while True:
            op = await ctx.tick(asyncio.sleep(3600))
            if isinstance(op, Control) and op.message is RuntimeControlMessage.SHUTDOWN:
                if stop_delay:
                    await asyncio.sleep(stop_delay)
                await script.note(f"stop:{name}")
                return

    return runnable(body, name=name)


async def run_until(manager: ProcessManager, coro: Any) -> None:
    task = asyncio.ensure_future(manager.process_start())
    try:
        await coro
    finally:
        await asyncio.wait_for(manager.process_handle().shutdown(), 10)
        await asyncio.wait_for(task, 10)


# -- restart types ------------------------------------------------------------------
async def test_one_for_one_restarts_only_the_failed_child() -> None:
    s, rec = Script(), Rec()
    m = (
        ProcessManagerBuilder()
        .name("app")
        .intensity(max_restarts=5, within=60)
        .backoff(NO_DELAY)
        .observer(rec)
        .pre_insert(kid(s, "a"))
        .pre_insert(kid(s, "b", fail_runs=1))
        .pre_insert(kid(s, "c"))
        .build()
    )

    async def check() -> None:
        await s.wait(lambda log: log.count("start:b") == 2)
        assert s.count("start:a") == 1 and s.count("start:c") == 1
        assert "stop:a" not in s.log and "stop:c" not in s.log
        [req] = rec.of(RestartRequested)
        assert (req.strategy, req.trigger, req.children) == ("one_for_one", "b", ("b",))
        [sched] = rec.of(RestartScheduled)
        assert (sched.child, sched.attempt, sched.strategy) == ("b", 1, "one_for_one")
        assert [e.child for e in rec.of(ProcessRestarted)] == ["b"]
        snap = m.snapshot()
        assert {c.name: c.restart_count for c in snap.children} == {"a": 0, "b": 1, "c": 0}

    await run_until(m, check())
    assert rec.of(RestartCompleted)[0].trigger == "b"


async def test_one_for_all_stops_others_in_reverse_and_restarts_all_in_start_order() -> None:
    s = Script()
    m = (
        ProcessManagerBuilder()
        .strategy(Strategy.ONE_FOR_ALL)
        .intensity(max_restarts=3, within=60)
        .backoff(NO_DELAY)
        .no_observers()
        .pre_insert(kid(s, "a"))
        .pre_insert(kid(s, "b", fail_runs=1, ready_gate=None))
        .pre_insert(kid(s, "c"))
        .pre_insert(kid(s, "d"))
        .build()
    )

    async def check() -> None:
        await s.wait(lambda log: log.count("start:d") == 2 and log.count("start:a") == 2)
        after_fail = s.log[s.log.index("fail:b") + 1 :]
        stops = [e for e in after_fail if e.startswith("stop:")]
        assert stops == ["stop:d", "stop:c", "stop:a"]
        restarts = [e for e in s.log if e.startswith("start:")][4:]
        assert restarts == ["start:a", "start:b", "start:c", "start:d"]
        assert {c.name: c.restart_count for c in m.snapshot().children} == {
            "a": 1,
            "b": 1,
            "c": 1,
            "d": 1,
        }

    await run_until(m, check())


async def test_rest_for_one_restarts_the_child_and_those_started_after_it() -> None:
    s, rec = Script(), Rec()
    m = (
        ProcessManagerBuilder()
        .strategy(Strategy.REST_FOR_ONE)
        .intensity(max_restarts=3, within=60)
        .backoff(NO_DELAY)
        .observer(rec)
        .pre_insert(kid(s, "a"))
        .pre_insert(kid(s, "b", fail_runs=1))
        .pre_insert(kid(s, "c"))
        .pre_insert(kid(s, "d"))
        .build()
    )

    async def check() -> None:
        await s.wait(lambda log: log.count("start:d") == 2)
        assert s.count("start:a") == 1 and "stop:a" not in s.log
        after_fail = s.log[s.log.index("fail:b") + 1 :]
        assert [e for e in after_fail if e.startswith("stop:")] == ["stop:d", "stop:c"]
        assert [e for e in s.log if e.startswith("start:")][4:] == [
            "start:b",
            "start:c",
            "start:d",
        ]
        [req] = rec.of(RestartRequested)
        assert req.strategy == "rest_for_one" and req.children == ("b", "c", "d")
        assert sorted(e.child for e in rec.of(ProcessRestarted)) == ["b", "c", "d"]

    await run_until(m, check())


async def test_permanent_child_is_restarted_after_a_clean_return() -> None:
    s = Script()
    m = (
        ProcessManagerBuilder()
        .intensity(max_restarts=5, within=60)
        .backoff(NO_DELAY)
        .no_observers()
        .pre_insert(kid(s, "p", return_runs=2), restart=Restart.PERMANENT)
        .build()
    )
    await run_until(m, s.wait(lambda log: log.count("start:p") == 3))


async def test_transient_child_is_not_restarted_after_a_clean_return() -> None:
    s = Script()
    m = (
        ProcessManagerBuilder()
        .intensity(max_restarts=5, within=60)
        .backoff(NO_DELAY)
        .no_observers()
        .pre_insert(kid(s, "t", return_runs=1))
        .build()
    )
    await asyncio.wait_for(m.process_start(), 10)  # nothing left: the manager returns
    assert s.count("start:t") == 1


async def test_temporary_child_failure_does_not_stop_its_siblings() -> None:
    s, rec = Script(), Rec()
    m = (
        ProcessManagerBuilder()
        .observer(rec)
        .pre_insert(kid(s, "tmp", fail_runs=1), restart=Restart.TEMPORARY)
        .pre_insert(kid(s, "steady"))
        .build()
    )

    async def check() -> None:
        await s.wait(lambda log: "fail:tmp" in log)
        await asyncio.sleep(0)
        assert m.snapshot().phase.value == "running"
        assert "stop:steady" not in s.log
        assert not rec.of(RestartRequested)

    await run_until(m, check())
    assert s.count("start:tmp") == 1


async def test_unrequested_cancellation_restarts_only_permanent_children() -> None:
    s = Script()
    m = (
        ProcessManagerBuilder()
        .intensity(max_restarts=5, within=60)
        .backoff(NO_DELAY)
        .no_observers()
        .pre_insert(kid(s, "perm"), restart=Restart.PERMANENT)
        .pre_insert(kid(s, "trans"))
        .build()
    )

    async def check() -> None:
        await s.wait(lambda log: "start:perm" in log and "start:trans" in log)
        tasks = {r.name: r.task for r in m._live.values()}
        for task in tasks.values():
            assert task is not None
            task.cancel()
        await s.wait(lambda log: log.count("start:perm") == 2)
        assert s.count("start:trans") == 1

    await run_until(m, check())


# -- intensity ----------------------------------------------------------------------
async def test_intensity_exceeded_shuts_down_and_raises_with_the_last_failure_as_cause() -> None:
    s = Script()
    m = (
        ProcessManagerBuilder()
        .intensity(max_restarts=2, within=60)
        .backoff(NO_DELAY)
        .no_observers()
        .pre_insert(kid(s, "crash", fail_runs=100))
        .pre_insert(kid(s, "steady"))
        .build()
    )
    with pytest.raises(RestartIntensityExceeded) as info:
        await asyncio.wait_for(m.process_start(), 10)
    assert s.count("start:crash") == 3  # the first run and 2 restarts
    assert "stop:steady" in s.log
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "run 3 failed" in str(info.value.__cause__)
    assert info.value.max_restarts == 2 and info.value.child == "crash"


async def test_permanent_clean_return_with_no_restart_allowed_raises_intensity_without_cause() -> (
    None
):
    s = Script()
    m = ProcessManager("app", observers=[])
    m.insert(kid(s, "p", return_runs=1), restart=Restart.PERMANENT)
    with pytest.raises(RestartIntensityExceeded) as info:
        await asyncio.wait_for(m.process_start(), 10)
    assert info.value.__cause__ is None


async def test_default_policy_raises_the_first_failure_itself() -> None:
    s = Script()
    m = ProcessManager("app", observers=[])
    m.insert(kid(s, "bad", fail_runs=1)).insert(kid(s, "good"))
    with pytest.raises(RuntimeError, match="bad run 1 failed"):
        await asyncio.wait_for(m.process_start(), 10)
    assert "stop:good" in s.log


async def test_a_group_restart_counts_once_towards_the_intensity() -> None:
    s = Script()
    m = (
        ProcessManagerBuilder()
        .strategy(Strategy.ONE_FOR_ALL)
        .intensity(max_restarts=1, within=60)
        .backoff(NO_DELAY)
        .no_observers()
        .pre_insert(kid(s, "a"))
        .pre_insert(kid(s, "b", fail_runs=1))
        .pre_insert(kid(s, "c"))
        .build()
    )
    # three children restart once together: one restart, within the intensity of 1
    await run_until(m, s.wait(lambda log: log.count("start:c") == 2))


async def test_backoff_delays_the_restart() -> None:
    s, rec = Script(), Rec()
    m = (
        ProcessManagerBuilder()
        .intensity(max_restarts=3, within=60)
        .backoff(RestartBackoff(initial=0.2, max=1))
        .observer(rec)
        .pre_insert(kid(s, "b", fail_runs=1))
        .build()
    )
    loop = asyncio.get_running_loop()

    async def check() -> None:
        await s.wait(lambda log: "fail:b" in log)
        t0 = loop.time()
        await s.wait(lambda log: log.count("start:b") == 2)
        assert loop.time() - t0 >= 0.15
        [sched] = rec.of(RestartScheduled)
        assert sched.delay == pytest.approx(0.2)

    await run_until(m, check())


async def test_shutdown_during_backoff_ends_at_once() -> None:
    s = Script()
    m = (
        ProcessManagerBuilder()
        .intensity(max_restarts=3, within=60)
        .backoff(RestartBackoff(initial=3600, max=3600))
        .no_observers()
        .pre_insert(kid(s, "b", fail_runs=1))
        .build()
    )
    task = asyncio.ensure_future(m.process_start())
    await s.wait(lambda log: "fail:b" in log)
    await asyncio.sleep(0)
    assert [c.state for c in m.snapshot().children] == [ChildState.BACKOFF]
    assert not m.snapshot().ready
    await asyncio.wait_for(m.process_handle().shutdown(), 5)
    await asyncio.wait_for(task, 5)
    assert s.count("start:b") == 1


# -- readiness ----------------------------------------------------------------------
async def test_wait_ready_child_is_starting_until_it_signals() -> None:
    s, rec = Script(), Rec()
    gate = asyncio.Event()
    m = ProcessManager("app", observers=[rec])
    m.insert(kid(s, "db", ready=True, ready_gate=gate), wait_ready=True)
    m.insert(kid(s, "plain"))

    async def check() -> None:
        await s.wait(lambda log: "start:db" in log and "start:plain" in log)
        snap = m.snapshot()
        states = {c.name: (c.state, c.ready) for c in snap.children}
        assert states["db"] == (ChildState.STARTING, False)
        assert states["plain"] == (ChildState.RUNNING, True)
        assert not snap.ready and not m.is_ready()
        waiter = asyncio.ensure_future(m.wait_ready())
        await asyncio.sleep(0)
        assert not waiter.done()
        gate.set()
        await asyncio.wait_for(waiter, 5)
        snap = m.snapshot()
        assert snap.ready and {c.name: c.state for c in snap.children}["db"] is ChildState.RUNNING
        [ready] = rec.of(ProcessReady)
        assert ready.child == "db" and ready.duration >= 0

    await run_until(m, check())


async def test_ready_is_a_no_op_without_wait_ready_and_outside_a_manager() -> None:
    s = Script()
    child = kid(s, "solo", ready=True, return_runs=1)
    await asyncio.wait_for(child.process_start(), 5)  # standalone: ready() does nothing
    m = ProcessManager("app", observers=[])
    m.insert(kid(s, "k", ready=True, return_runs=1))
    await asyncio.wait_for(m.process_start(), 5)
    assert s.count("ready:k") == 1


async def test_ready_timeout_fails_the_child_with_ready_timeout_error() -> None:
    s = Script()
    never = asyncio.Event()
    m = ProcessManager("app", observers=[])
    m.insert(kid(s, "slow", ready=True, ready_gate=never), wait_ready=True, ready_timeout=0.1)
    m.insert(kid(s, "other"))
    with pytest.raises(ReadyTimeoutError) as info:
        await asyncio.wait_for(m.process_start(), 10)
    assert isinstance(info.value, TimeoutError)
    assert "'slow'" in str(info.value)
    assert "stop:other" in s.log


async def test_ready_timeout_with_observers_emits_a_failure() -> None:
    s, rec = Script(), Rec()
    never = asyncio.Event()
    m = ProcessManager("app", observers=[rec])
    m.insert(kid(s, "slow", ready=True, ready_gate=never), wait_ready=True, ready_timeout=0.1)
    with pytest.raises(ReadyTimeoutError):
        await asyncio.wait_for(m.process_start(), 10)
    from procman.events import ProcessCancelled, ProcessFailed

    [failed] = rec.of(ProcessFailed)
    assert isinstance(failed.exception, ReadyTimeoutError)
    assert not rec.of(ProcessCancelled)


async def test_a_restarted_child_is_starting_again_until_it_signals_again() -> None:
    s, rec = Script(), Rec()
    gate = asyncio.Event()
    gate.set()
    m = (
        ProcessManagerBuilder()
        .intensity(max_restarts=3, within=60)
        .backoff(NO_DELAY)
        .observer(rec)
        .pre_insert(kid(s, "db", ready=True, ready_gate=gate, fail_runs=0), wait_ready=True)
        .build()
    )

    async def check() -> None:
        await m.wait_ready()
        gate.clear()
        [r] = [r for r in m._live.values()]
        assert r.task is not None
        r.task.cancel()  # unrequested cancellation: TRANSIENT, not restarted
        await s.wait(lambda log: True)

    task = asyncio.ensure_future(m.process_start())
    await check()
    await asyncio.wait_for(task, 5)  # the only child ended: the manager returns


async def test_failed_ready_child_restarts_and_must_signal_again() -> None:
    s, rec = Script(), Rec()
    gate = asyncio.Event()
    m = (
        ProcessManagerBuilder()
        .intensity(max_restarts=3, within=60)
        .backoff(NO_DELAY)
        .observer(rec)
        .pre_insert(kid(s, "db", ready=True, ready_gate=gate, fail_runs=1), wait_ready=True)
        .build()
    )

    async def check() -> None:
        gate.set()
        await s.wait(lambda log: log.count("start:db") == 2)
        await m.wait_ready()
        assert len(rec.of(ProcessReady)) == 2
        assert [e.restart_count for e in rec.of(ProcessReady)] == [0, 1]

    await run_until(m, check())


async def test_nested_manager_is_ready_when_its_children_are() -> None:
    s, rec = Script(), Rec()
    gate = asyncio.Event()
    inner = ProcessManager("inner")
    inner.insert(kid(s, "conn", ready=True, ready_gate=gate), wait_ready=True)
    root = ProcessManager("root", observers=[rec])
    root.insert(inner)
    root.insert(kid(s, "web"))

    async def check() -> None:
        await s.wait(lambda log: "start:conn" in log)
        snap = root.snapshot()
        assert not snap.ready
        nested = {c.name: c for c in snap.children}["inner"]
        assert nested.ready is False
        gate.set()
        await asyncio.wait_for(root.wait_ready(), 5)
        assert root.snapshot().ready
        assert {e.path for e in rec.of(ProcessReady)} == {"root/inner/conn", "root/inner"}

    await run_until(root, check())


# -- ordered start and stop ---------------------------------------------------------------
async def test_ordered_start_waits_for_each_child_to_be_ready() -> None:
    s = Script()
    gates = [asyncio.Event() for _ in range(3)]
    b = ProcessManagerBuilder().ordered(True).no_observers()
    for i, gate in enumerate(gates):
        b.pre_insert(kid(s, f"c{i}", ready=True, ready_gate=gate), wait_ready=True)
    b.pre_insert(kid(s, "plain"))
    m = b.build()

    async def check() -> None:
        await m.wait_started()
        await s.wait(lambda log: "start:c0" in log)
        assert "start:c1" not in s.log
        snap = m.snapshot()
        assert [c.name for c in snap.children] == ["c0", "c1", "c2", "plain"]
        assert [c.state for c in snap.children] == [ChildState.STARTING] * 4
        gates[0].set()
        await s.wait(lambda log: "start:c1" in log)
        assert "start:c2" not in s.log
        gates[1].set()
        gates[2].set()
        await asyncio.wait_for(m.wait_ready(), 5)
        starts = [e for e in s.log if e.startswith("start:")]
        assert starts == ["start:c0", "start:c1", "start:c2", "start:plain"]

    await run_until(m, check())
    stops = [e for e in s.log if e.startswith("stop:")]
    assert stops == ["stop:plain", "stop:c2", "stop:c1", "stop:c0"]


async def test_ordered_shutdown_waits_for_each_child_before_asking_the_previous() -> None:
    s = Script()
    m = ProcessManager("app", observers=[], ordered=True)
    m.insert(kid(s, "first"))
    m.insert(kid(s, "slow", stop_delay=0.2))
    m.insert(kid(s, "last"))

    async def check() -> None:
        await s.wait(lambda log: log.count("start:last") == 1)

    await run_until(m, check())
    assert [e for e in s.log if e.startswith("stop:")] == ["stop:last", "stop:slow", "stop:first"]


async def test_failure_during_ordered_start_stops_started_children_in_reverse() -> None:
    s = Script()
    gate = asyncio.Event()
    m = ProcessManager("app", observers=[], ordered=True)
    m.insert(kid(s, "a"))
    m.insert(kid(s, "b"))
    m.insert(kid(s, "c", fail_runs=1, ready_gate=gate), wait_ready=True)
    m.insert(kid(s, "never"))
    task = asyncio.ensure_future(m.process_start())
    await s.wait(lambda log: "start:c" in log)
    gate.set()
    with pytest.raises(RuntimeError, match="c run 1 failed"):
        await asyncio.wait_for(task, 10)
    assert "start:never" not in s.log
    assert [e for e in s.log if e.startswith("stop:")] == ["stop:b", "stop:a"]


async def test_ordered_shutdown_force_cancels_a_child_after_its_own_timeout() -> None:
    s = Script()
    m = ProcessManager("app", observers=[], ordered=True, shutdown_grace_period=10)
    m.insert(kid(s, "a"))
    m.insert(kid(s, "stuck", stop_delay=3600), shutdown_timeout=0.1)
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(m.process_start())
    await s.wait(lambda log: "start:stuck" in log)
    t0 = loop.time()
    await asyncio.wait_for(m.process_handle().shutdown(), 5)
    await task
    assert loop.time() - t0 < 3
    assert s.log[-1] == "stop:a" and "stop:stuck" not in s.log


async def test_add_during_an_ordered_start_joins_the_end() -> None:
    s = Script()
    gate = asyncio.Event()
    m = ProcessManager("app", observers=[], ordered=True)
    m.insert(kid(s, "a", ready=True, ready_gate=gate), wait_ready=True)
    m.insert(kid(s, "b"))

    async def check() -> None:
        await m.wait_started()
        m.add(kid(s, "late"))
        await s.wait(lambda log: "start:a" in log)
        assert "start:late" not in s.log
        gate.set()
        await s.wait(lambda log: "start:late" in log)
        assert [e for e in s.log if e.startswith("start:")] == ["start:a", "start:b", "start:late"]

    await run_until(m, check())


async def test_children_waiting_in_an_ordered_start_never_start_after_a_shutdown() -> None:
    s = Script()
    never = asyncio.Event()
    m = ProcessManager("app", observers=[], ordered=True, shutdown_grace_period=0.1)
    m.insert(kid(s, "a", ready=True, ready_gate=never), wait_ready=True)
    m.insert(kid(s, "b"))
    task = asyncio.ensure_future(m.process_start())
    await s.wait(lambda log: "start:a" in log)
    await asyncio.wait_for(m.process_handle().shutdown(), 5)
    await task
    assert "start:b" not in s.log


# -- shutdown timeouts and significant children ---------------------------------------------
async def test_per_child_shutdown_timeout_cancels_that_child_first() -> None:
    s = Script()
    m = ProcessManager("app", observers=[], shutdown_grace_period=10)
    m.insert(kid(s, "quick_to_cancel", stop_delay=3600), shutdown_timeout=0.05)
    m.insert(kid(s, "polite", stop_delay=0.3))
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(m.process_start())
    await s.wait(lambda log: "start:polite" in log and "start:quick_to_cancel" in log)
    t0 = loop.time()
    await asyncio.wait_for(m.process_handle().shutdown(), 5)
    await task
    assert loop.time() - t0 < 5
    assert "stop:polite" in s.log and "stop:quick_to_cancel" not in s.log


async def test_shutdown_timeout_never_extends_the_managers_grace_period() -> None:
    s = Script()
    m = ProcessManager("app", observers=[], shutdown_grace_period=0.1)
    m.insert(kid(s, "stuck", stop_delay=3600), shutdown_timeout=3600)
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(m.process_start())
    await s.wait(lambda log: "start:stuck" in log)
    t0 = loop.time()
    await asyncio.wait_for(m.process_handle().shutdown(), 5)
    await task
    assert loop.time() - t0 < 3


async def test_significant_child_returning_ends_the_tree() -> None:
    s = Script()
    m = ProcessManager("app", observers=[])
    m.insert(kid(s, "job", return_runs=1), significant=True)
    m.insert(kid(s, "sidecar"))
    await asyncio.wait_for(m.process_start(), 10)
    assert "stop:sidecar" in s.log


async def test_significant_child_failing_follows_its_restart_type() -> None:
    s = Script()
    m = (
        ProcessManagerBuilder()
        .intensity(max_restarts=3, within=60)
        .backoff(NO_DELAY)
        .no_observers()
        .pre_insert(kid(s, "job", fail_runs=1, return_runs=1), significant=True)
        .pre_insert(kid(s, "sidecar"))
        .build()
    )
    await asyncio.wait_for(m.process_start(), 10)
    assert s.count("start:job") == 2 and "stop:sidecar" in s.log


async def test_significant_in_a_nested_manager_ends_that_manager_only() -> None:
    s = Script()
    inner = ProcessManager("batch")
    inner.insert(kid(s, "job", return_runs=1), significant=True)
    inner.insert(kid(s, "helper"))
    root = ProcessManager("root", observers=[])
    root.insert(inner)
    root.insert(kid(s, "web"))

    async def check() -> None:
        await s.wait(lambda log: "stop:helper" in log)
        await inner.wait_stopped()
        assert "stop:web" not in s.log

    await run_until(root, check())


# -- bad input --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "error", "name"),
    [
        ({"restart": "permanent"}, TypeError, "restart"),
        ({"wait_ready": 1}, TypeError, "wait_ready"),
        ({"ready_timeout": 0}, ValueError, "ready_timeout"),
        ({"ready_timeout": float("nan")}, ValueError, "ready_timeout"),
        ({"ready_timeout": "5"}, TypeError, "ready_timeout"),
        ({"shutdown_timeout": -1}, ValueError, "shutdown_timeout"),
        ({"shutdown_timeout": 10**400}, ValueError, "shutdown_timeout"),
        ({"significant": "yes"}, TypeError, "significant"),
        ({"significant": True, "restart": Restart.PERMANENT}, ValueError, "significant"),
    ],
)
def test_bad_child_options_are_refused_at_the_call(
    options: dict[str, Any], error: type[Exception], name: str
) -> None:
    s = Script()
    with pytest.raises(error, match=name):
        ProcessManagerBuilder().pre_insert(kid(s, "x"), **options)
    with pytest.raises(error, match=name):
        ProcessManager("m").insert(kid(s, "x"), **options)


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda b: b.strategy("one_for_all"), TypeError, "strategy"),
        (lambda b: b.intensity(-1, 5), ValueError, "max_restarts"),
        (lambda b: b.intensity(1.5, 5), TypeError, "max_restarts"),
        (lambda b: b.intensity(1, 0), ValueError, "within"),
        (lambda b: b.intensity(1, 10**400), ValueError, "within"),
        (lambda b: b.backoff(1.0), TypeError, "backoff"),
        (lambda b: b.ordered("yes"), TypeError, "ordered"),
    ],
)
def test_bad_policy_values_are_refused_at_the_call(
    call: Callable[[ProcessManagerBuilder], object], error: type[Exception], name: str
) -> None:
    with pytest.raises(error, match=name):
        call(ProcessManagerBuilder())


async def test_add_takes_the_same_options() -> None:
    s = Script()
    m = (
        ProcessManagerBuilder()
        .intensity(max_restarts=3, within=60)
        .backoff(NO_DELAY)
        .no_observers()
        .pre_insert(kid(s, "base"))
        .build()
    )

    async def check() -> None:
        await m.wait_started()
        m.add(kid(s, "p", return_runs=1), restart=Restart.PERMANENT)
        await s.wait(lambda log: log.count("start:p") == 2)
        with pytest.raises(ValueError, match="ready_timeout"):
            m.add(kid(s, "bad"), ready_timeout=-1)

    await run_until(m, check())


@pytest.mark.parametrize("restart", [Restart.TRANSIENT, Restart.PERMANENT, Restart.TEMPORARY])
async def test_a_termination_signal_stops_the_tree_whatever_the_restart_policy(
    restart: Restart,
) -> None:
    import signal

    from procman import TerminationSignal

    async def receiver(ctx: RuntimeContext) -> None:
        await asyncio.sleep(0)
        raise TerminationSignal(signal.SIGTERM)

    s = Script()
    m = (
        ProcessManagerBuilder()
        .intensity(max_restarts=10, within=60)
        .backoff(NO_DELAY)
        .no_observers()
        .pre_insert(runnable(receiver, name="signals"), restart=restart)
        .pre_insert(kid(s, "app"))
        .build()
    )
    with pytest.raises(TerminationSignal):
        await asyncio.wait_for(m.process_start(), 10)
    assert "stop:app" in s.log


async def test_observers_and_grace_period_can_be_set_before_start_only() -> None:
    from procman import ManagerStateError

    rec = Rec()
    m = ProcessManager("app")
    assert m.observers is None
    m.set_observers([rec])
    m.shutdown_grace_period = 1.5
    assert m.observers == (rec,) and m.shutdown_grace_period == 1.5
    with pytest.raises(ValueError, match="shutdown_grace_period"):
        m.shutdown_grace_period = -1
    s = Script()
    m.insert(kid(s, "a"))
    task = asyncio.ensure_future(m.process_start())
    await m.wait_started()
    with pytest.raises(ManagerStateError, match="before start"):
        m.set_observers([])
    with pytest.raises(ManagerStateError, match="before start"):
        m.shutdown_grace_period = 3
    await m.process_handle().shutdown()
    await task
    assert rec.events


async def test_a_restart_cut_short_by_a_shutdown_completes_as_cancelled() -> None:
    s, rec = Script(), Rec()
    m = (
        ProcessManagerBuilder()
        .intensity(max_restarts=3, within=60)
        .backoff(RestartBackoff(initial=3600, max=3600))
        .observer(rec)
        .pre_insert(kid(s, "b", fail_runs=1))
        .pre_insert(kid(s, "c"))
        .build()
    )
    task = asyncio.ensure_future(m.process_start())
    await s.wait(lambda log: "fail:b" in log)
    await asyncio.sleep(0)
    await asyncio.wait_for(m.process_handle().shutdown(), 5)
    await asyncio.wait_for(task, 5)
    [done] = rec.of(RestartCompleted)
    assert (done.trigger, done.result) == ("b", "cancelled")
