"""RestartSupervisor and RestartBackoff."""

from __future__ import annotations

import asyncio
import time

import pytest
from helpers import Recorder, Worker, wait_until

from procman import ChildState, ProcessManager
from procman.builtin import (
    IdleProcess,
    RestartBackoff,
    RestartIntensityExceeded,
    RestartSupervisor,
)
from procman.events import (
    ProcessFailed,
    ProcessRestarted,
    ProcessStarted,
    RestartScheduled,
)
from procman.testing import wait_for_child_state, wait_for_event


def test_backoff_delays_grow_and_cap() -> None:
    b = RestartBackoff(initial=0.1, max=1.0, factor=2.0)
    assert [b.delay(n) for n in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_backoff_jitter_only_shortens() -> None:
    b = RestartBackoff(initial=1.0, max=1.0, factor=1.0, jitter=0.5)
    delays = [b.delay(1) for _ in range(200)]
    assert all(0.5 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"initial": -1}, ValueError),
        ({"initial": "1"}, TypeError),
        ({"initial": 2, "max": 1}, ValueError),
        ({"factor": 0.5}, ValueError),
        ({"jitter": 2}, ValueError),
        ({"initial": float("nan")}, ValueError),
    ],
)
def test_backoff_rejects_bad_values(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        RestartBackoff(**kwargs)  # type: ignore[arg-type]


def test_supervisor_validates_arguments() -> None:
    with pytest.raises(TypeError):
        RestartSupervisor("x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RestartSupervisor(IdleProcess()).backoff(0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RestartSupervisor(IdleProcess()).intensity(-1)


async def test_restart_cycle_and_events() -> None:
    rec = Recorder()
    child = Worker("flaky", fail_after=2, period=0.001)
    sup = RestartSupervisor(child).backoff(RestartBackoff(initial=0.01, max=0.02))
    assert sup.process_name() == "flaky"
    m = ProcessManager("root", observers=[rec])
    m.insert(sup)
    task = asyncio.create_task(m.process_start())
    await wait_for_event(rec, ProcessStarted, child="flaky", count=4)  # three restarts
    await m.process_handle().shutdown()
    assert task.result() is None
    assert child.runs >= 4 and sup.restart_count >= 3
    failed = rec.of(ProcessFailed)
    assert len(failed) >= 3 and all(e.child == "flaky" for e in failed)
    scheduled = rec.of(RestartScheduled)
    assert [e.attempt for e in scheduled[:3]] == [1, 2, 3]
    assert scheduled[0].delay == pytest.approx(0.01)
    restarted = rec.of(ProcessRestarted)
    assert [e.attempt for e in restarted[:3]] == [1, 2, 3]
    starts = [e.restart_count for e in rec.of(ProcessStarted)]
    assert starts[:4] == [0, 1, 2, 3]
    snap = m.snapshot()
    assert snap.children == () or snap.children[0].name == "flaky"


async def test_shutdown_during_backoff_returns_at_once() -> None:
    child = Worker("flaky", fail_after=1, period=0.001)
    sup = RestartSupervisor(child, RestartBackoff(initial=30, max=30))
    m = ProcessManager("root", observers=[])
    m.insert(sup).insert(IdleProcess())
    task = asyncio.create_task(m.process_start())
    await wait_for_child_state(m, "flaky", ChildState.BACKOFF)
    t0 = time.monotonic()
    await asyncio.wait_for(m.process_handle().shutdown(), 5)
    assert time.monotonic() - t0 < 2
    assert task.result() is None


async def test_child_returning_normally_ends_supervisor() -> None:
    child = Worker("once", exit_after=1, period=0.001)
    sup = RestartSupervisor(child)
    await asyncio.wait_for(sup.process_start(), 5)
    assert child.runs == 1


async def test_shutdown_is_forwarded_to_running_child() -> None:
    child = Worker("w")
    sup = RestartSupervisor(child)
    task = asyncio.create_task(sup.process_start())
    await child.started.wait()
    await sup.process_handle().shutdown()
    await asyncio.wait_for(task, 5)
    assert child.stopped_gracefully and child.runs == 1


async def test_reload_is_forwarded_to_child() -> None:
    child = Worker("w")
    sup = RestartSupervisor(child)
    m = ProcessManager("root", observers=[])
    m.insert(sup)
    task = asyncio.create_task(m.process_start())
    await child.started.wait()
    await m.process_handle().reload()
    await wait_until(lambda: child.reloads == 1)
    await m.process_handle().shutdown()
    await task


async def test_shutdown_before_start_is_kept() -> None:
    child = Worker("w")
    sup = RestartSupervisor(child)
    await sup.process_handle().shutdown()
    await asyncio.wait_for(sup.process_start(), 1)
    assert child.runs == 0


async def test_intensity_exceeded_escalates_to_manager() -> None:
    err = ConnectionError("down")
    child = Worker("db", fail_after=1, period=0.001, exc=err)
    sup = RestartSupervisor(child, RestartBackoff(initial=0, max=0)).intensity(3, within=10)
    m = ProcessManager("root", observers=[])
    m.insert(sup).insert(IdleProcess())
    with pytest.raises(RestartIntensityExceeded) as info:
        await asyncio.wait_for(m.process_start(), 5)
    assert info.value.__cause__ is err
    assert child.runs == 4
    assert "root/db" in info.value.__notes__[0]


async def test_restart_wraps_a_whole_manager() -> None:
    inner = ProcessManager("inner", observers=[])
    leaf = Worker("leaf", fail_after=2, period=0.001)
    inner.insert(leaf).insert(IdleProcess())
    sup = RestartSupervisor(inner, RestartBackoff(initial=0.01, max=0.01))
    root = ProcessManager("root", observers=[])
    root.insert(sup)
    task = asyncio.create_task(root.process_start())
    await wait_until(lambda: sup.restart_count >= 2)
    snap = root.snapshot()
    assert snap.children[0].name == "inner"
    await root.process_handle().shutdown()
    assert task.result() is None
    assert leaf.runs >= 3
