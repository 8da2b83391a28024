"""The read-only tree snapshot."""

from __future__ import annotations

import asyncio
import time

from helpers import Worker

from procman import ChildState, ManagerPhase, ProcessManager
from procman.builtin import IdleProcess, RestartBackoff, RestartSupervisor
from procman.testing import wait_for_state


async def test_snapshot_of_a_nested_tree() -> None:
    inner = ProcessManager("db", observers=[])
    inner.insert(IdleProcess("conn-1")).insert(IdleProcess("conn-2"))
    root = ProcessManager("root", observers=[])
    flaky = RestartSupervisor(Worker("flaky", fail_after=1), RestartBackoff(30, 30))
    root.insert(inner).insert(IdleProcess("idle")).insert(flaky)
    before = time.time()
    task = asyncio.create_task(root.process_start())
    snap = await wait_for_state(root, lambda s: s.state_counts()[ChildState.BACKOFF] == 1)
    assert snap.path == "root" and snap.phase is ManagerPhase.RUNNING and snap.alive
    by_name = {c.name: c for c in snap.children}
    assert by_name["idle"].state is ChildState.RUNNING
    assert by_name["flaky"].restart_count == 0
    assert by_name["idle"].started_at >= before - 1
    nested = by_name["db"].supervisor
    assert nested is not None and nested.path == "root/db"
    assert [s.path for s in snap.walk()] == ["root", "root/db"]
    assert nested.state_counts()[ChildState.RUNNING] == 2
    assert not snap.ready  # a child in backoff
    await root.process_handle().shutdown()
    await task
    assert root.snapshot().phase is ManagerPhase.STOPPED


async def test_snapshot_is_cheap_for_many_children() -> None:
    root = ProcessManager("root", observers=[])
    for _ in range(10_000):
        root.insert(IdleProcess())
    task = asyncio.create_task(root.process_start())
    await wait_for_state(root, lambda s: s.ready, timeout=30)
    t0 = time.perf_counter()
    snap = root.snapshot()
    elapsed = time.perf_counter() - t0
    assert len(snap.children) == 10_000 and snap.ready
    assert elapsed < 2.0  # generous; measured speed lives in benchmarks/
    await root.process_handle().shutdown()
    await task
