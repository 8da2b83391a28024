"""Issue 9: no user callback, observer or restart loop can hang, crash or poison a tree."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from typing import Any

import pytest

from procman import (
    ManagerPhase,
    ProcessControlHandler,
    ProcessManager,
    ProcessManagerBuilder,
    RestartBackoff,
    Runnable,
    RuntimeGuard,
)
from procman.builtin import IdleProcess, RestartSupervisor
from procman.events import (
    TERMINAL_EVENTS,
    LifecycleEvent,
    ProcessFailed,
    ProcessStarted,
    ShutdownCompleted,
    ShutdownRequested,
)


class Rec:
    def __init__(self) -> None:
        self.events: list[LifecycleEvent] = []

    def on_event(self, event: LifecycleEvent) -> None:
        self.events.append(event)


def observer_sets() -> list[Any]:
    return [pytest.param(lambda: [], id="no-observer"), pytest.param(lambda: [Rec()], id="rec")]


# -- 1: restart delays never overflow -----------------------------------------------------
@pytest.mark.parametrize("restart", [1025, 10**6, 10**9, 10**18])
@pytest.mark.parametrize("factor", [2, 1e200, 1.0000001])
def test_restart_delay_never_overflows(restart: int, factor: float) -> None:
    backoff = RestartBackoff(initial=0.1, max=30, factor=factor)
    assert 0.1 <= backoff.delay(restart) <= 30


def test_restart_delay_grows_then_caps() -> None:
    backoff = RestartBackoff(initial=1, max=10, factor=2)
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 5, 6)] == [1, 2, 4, 8, 10, 10]


class Crasher(Runnable):
    def __init__(self, limit: int) -> None:
        self.runs = 0
        self.limit = limit
        self._guard = RuntimeGuard()

    async def process_start(self) -> None:
        self.runs += 1
        if self.runs <= self.limit:
            raise RuntimeError("crash")

    def process_handle(self) -> ProcessControlHandler:
        return self._guard.handle()


async def test_zero_backoff_crash_loop_of_5000_restarts_with_flat_memory_and_matching_metric() -> (
    None
):
    prometheus_client = pytest.importorskip("prometheus_client")
    from procman_metrics import PrometheusMetrics

    registry = prometheus_client.CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    crasher = Crasher(5000)
    sup = RestartSupervisor(crasher, RestartBackoff(initial=0, max=0))
    root = ProcessManager("root", observers=[metrics])
    root.insert(sup)
    gc.collect()
    tracemalloc.start()
    task = asyncio.ensure_future(root.process_start())
    while crasher.runs < 1000:
        await asyncio.sleep(0)
    gc.collect()
    early, _ = tracemalloc.get_traced_memory()
    await asyncio.wait_for(task, 60)
    gc.collect()
    late, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert crasher.runs == 5001
    assert late - early < 512 * 1024, (early, late)  # flat: no per-restart growth
    value = registry.get_sample_value(
        "procman_child_restarts_total", {"supervisor": "root", "child": "Crasher"}
    )
    assert value == 5000 == sup.restart_count


# -- 2: user callbacks that raise -----------------------------------------------------------
class BadName(IdleProcess):
    def process_name(self) -> str:
        raise KeyError("no name")


def test_a_process_name_that_raises_fails_at_insert_and_leaves_the_manager_usable() -> None:
    m = ProcessManager("m", observers=[])
    with pytest.raises(KeyError):
        m.insert(BadName())
    with pytest.raises(KeyError):
        ProcessManagerBuilder().pre_insert(BadName())
    assert m.phase is ManagerPhase.CREATED


class NotAString(IdleProcess):
    def process_name(self) -> str:
        return 42  # type: ignore[return-value]


def test_a_process_name_that_is_not_a_str_is_refused_naming_the_method() -> None:
    with pytest.raises(TypeError, match=r"process_name\(\)"):
        ProcessManager("m").insert(NotAString())


async def test_a_process_name_that_raises_in_add_leaves_the_tree_running() -> None:
    m = ProcessManager("m", observers=[])
    m.insert(IdleProcess())
    task = asyncio.ensure_future(m.process_start())
    await m.wait_started()
    with pytest.raises(KeyError):
        m.add(BadName())
    assert m.phase is ManagerPhase.RUNNING
    await asyncio.wait_for(m.process_handle().shutdown(), 5)
    await asyncio.wait_for(task, 5)


class SyncRaiser(Runnable):
    def process_start(self) -> Any:  # type: ignore[override]
        raise ValueError("sync boom")

    def process_handle(self) -> ProcessControlHandler:
        return RuntimeGuard().handle()


class NotAsync(Runnable):
    def process_start(self) -> Any:  # type: ignore[override]
        return None

    def process_handle(self) -> ProcessControlHandler:
        return RuntimeGuard().handle()


@pytest.mark.parametrize("observers", observer_sets())
@pytest.mark.parametrize(
    ("child", "error"), [(SyncRaiser, ValueError), (NotAsync, TypeError)], ids=["raises", "sync"]
)
async def test_a_process_start_that_is_not_a_coroutine_fails_the_child_the_same_way(
    observers: Any, child: type[Runnable], error: type[Exception]
) -> None:
    sibling = IdleProcess()
    m = ProcessManager("m", observers=observers())
    m.insert(sibling).insert(child())
    for _ in range(2):  # ends in a defined state, and can be started again
        with pytest.raises(error):
            await asyncio.wait_for(m.process_start(), 5)
        assert m.phase is ManagerPhase.STOPPED
        await asyncio.wait_for(m.wait_stopped(), 1)


class DuckHandle:
    """Only the documented shutdown()/reload(), no ProcessControlHandler base."""

    def __init__(self, guard: RuntimeGuard) -> None:
        self.guard = guard
        self.calls: list[str] = []

    async def shutdown(self) -> None:
        self.calls.append("shutdown")
        await self.guard.handle().shutdown()

    async def reload(self) -> None:
        self.calls.append("reload")


class DuckChild(Runnable):
    def __init__(self) -> None:
        self.guard = RuntimeGuard()
        self.handle = DuckHandle(self.guard)

    async def process_start(self) -> None:
        await self.guard.block_until_shutdown()

    def process_handle(self) -> Any:
        return self.handle


@pytest.mark.parametrize("observers", observer_sets())
async def test_a_duck_typed_handle_without_control_nowait_gets_its_messages(
    observers: Any,
) -> None:
    child = DuckChild()
    m = ProcessManager("m", observers=observers(), shutdown_grace_period=30)
    m.insert(child)
    task = asyncio.ensure_future(m.process_start())
    await m.wait_started()
    await asyncio.wait_for(m.process_handle().reload(), 5)
    await asyncio.wait_for(m.process_handle().shutdown(), 5)
    await asyncio.wait_for(task, 5)
    assert child.handle.calls == ["reload", "shutdown"]


class RaisingHandle(ProcessControlHandler):
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    async def shutdown(self) -> None:
        raise self.exc

    async def reload(self) -> None:
        raise self.exc

    def control_nowait(self, message: Any) -> bool:
        raise self.exc


class StubbornChild(Runnable):
    def __init__(self, exc: BaseException) -> None:
        self.handle = RaisingHandle(exc)

    async def process_start(self) -> None:
        await asyncio.Event().wait()

    def process_handle(self) -> ProcessControlHandler:
        return self.handle


@pytest.mark.parametrize("observers", observer_sets())
@pytest.mark.parametrize(
    "exc", [RuntimeError("x"), asyncio.CancelledError(), GeneratorExit()], ids=repr
)
async def test_a_handle_that_raises_anything_still_lets_the_tree_end(
    observers: Any, exc: BaseException
) -> None:
    m = ProcessManager("m", observers=observers(), shutdown_grace_period=0.05)
    m.insert(StubbornChild(exc)).insert(IdleProcess())
    task = asyncio.ensure_future(m.process_start())
    await m.wait_started()
    await asyncio.wait_for(m.process_handle().shutdown(), 5)
    await asyncio.wait_for(task, 5)
    assert m.phase is ManagerPhase.STOPPED


# -- 3: observers that raise BaseException -------------------------------------------------------
class RaisingObserver:
    def __init__(self, exc: BaseException, on: tuple[type[LifecycleEvent], ...]) -> None:
        self.exc = exc
        self.on = on
        self.seen: list[LifecycleEvent] = []

    def on_event(self, event: LifecycleEvent) -> None:
        self.seen.append(event)
        if isinstance(event, self.on):
            raise self.exc


@pytest.mark.parametrize(
    "exc", [asyncio.CancelledError(), GeneratorExit(), RuntimeError("obs")], ids=repr
)
async def test_an_observer_raising_anything_on_shutdown_events_does_not_hang_the_tree(
    exc: BaseException,
) -> None:
    obs = RaisingObserver(exc, (ShutdownRequested, ShutdownCompleted, ProcessStarted))
    m = ProcessManager("m", observers=[obs])
    m.insert(IdleProcess())
    task = asyncio.ensure_future(m.process_start())
    await m.wait_started()
    await asyncio.wait_for(m.process_handle().shutdown(), 5)
    await asyncio.wait_for(task, 5)
    assert {type(e) for e in obs.seen} >= {ShutdownRequested, ShutdownCompleted}
    assert m.fanout.errors >= 2


class RaisingWants:
    def __init__(self) -> None:
        self.events: list[LifecycleEvent] = []

    def wants(self, event_type: type[LifecycleEvent]) -> bool:
        raise asyncio.CancelledError

    def on_event(self, event: LifecycleEvent) -> None:
        self.events.append(event)


async def test_an_observer_whose_wants_raises_gets_every_event() -> None:
    obs = RaisingWants()
    m = ProcessManager("m", observers=[obs])
    m.insert(IdleProcess())
    task = asyncio.ensure_future(m.process_start())
    await m.wait_started()
    await asyncio.wait_for(m.process_handle().shutdown(), 5)
    await asyncio.wait_for(task, 5)
    assert any(isinstance(e, ShutdownCompleted) for e in obs.events)


# -- 4: every ending gets exactly one terminal event ----------------------------------------------
class CustomBase(BaseException):
    pass


class EndsWith(Runnable):
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    async def process_start(self) -> None:
        await asyncio.sleep(0)
        raise self.exc

    def process_handle(self) -> ProcessControlHandler:
        return RuntimeGuard().handle()


@pytest.mark.parametrize("exc", [CustomBase("odd"), GeneratorExit()], ids=repr)
async def test_a_run_ending_in_a_base_exception_gets_a_terminal_event(exc: BaseException) -> None:
    rec = Rec()
    m = ProcessManager("m", observers=[rec])
    m.insert(EndsWith(exc)).insert(IdleProcess())
    with pytest.raises(type(exc)):
        await asyncio.wait_for(m.process_start(), 5)
    terminal = [e for e in rec.events if isinstance(e, TERMINAL_EVENTS) and e.child == "EndsWith"]
    assert len(terminal) == 1 and isinstance(terminal[0], ProcessFailed)
    assert terminal[0].exception is exc


async def test_metrics_count_a_base_exception_ending_as_an_exit() -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    from procman_metrics import PrometheusMetrics

    registry = prometheus_client.CollectorRegistry()
    m = ProcessManager("m", observers=[PrometheusMetrics(registry=registry)])
    m.insert(EndsWith(CustomBase()))
    with pytest.raises(CustomBase):
        await asyncio.wait_for(m.process_start(), 5)
    labels = {"supervisor": "m", "child": "EndsWith"}
    starts = registry.get_sample_value("procman_child_starts_total", labels)
    exits = registry.get_sample_value("procman_child_exits_total", {**labels, "outcome": "error"})
    assert starts == exits == 1


# -- 10: huge numbers are ValueErrors naming the argument ----------------------------------------
@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: ProcessManagerBuilder().shutdown_grace_period(10**400), "shutdown_grace_period"),
        (lambda: ProcessManagerBuilder().cancel_timeout(10**400), "cancel_timeout"),
        (lambda: ProcessManagerBuilder().intensity(1, 10**400), "within"),
        (lambda: RestartBackoff(initial=10**400, max=10**401), "initial"),
        (lambda: RestartBackoff(factor=10**400), "factor"),
        (lambda: RestartSupervisor(IdleProcess()).intensity(1, 10**400), "within"),
        (lambda: ProcessManager("m", shutdown_grace_period=float("inf")), "shutdown_grace_period"),
        (lambda: ProcessManager("m", cancel_timeout=float("nan")), "cancel_timeout"),
        (lambda: ProcessManager("m", shutdown_grace_period=-1), "shutdown_grace_period"),
    ],
)
def test_out_of_range_numbers_are_value_errors_naming_the_argument(call: Any, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        call()


@pytest.mark.parametrize("name", ["bad\udcff", "\ud800x"])
def test_a_name_that_cannot_be_encoded_is_refused_naming_it(name: str) -> None:
    class Named(IdleProcess):
        def process_name(self) -> str:
            return name

    with pytest.raises(ValueError, match="UTF-8"):
        ProcessManagerBuilder().name(name)
    with pytest.raises(ValueError, match="UTF-8"):
        ProcessManager(name)
    with pytest.raises(ValueError, match="process_name"):
        ProcessManager("m").insert(Named())
    with pytest.raises(ValueError, match="process_name"):
        ProcessManagerBuilder().pre_insert(Named())
