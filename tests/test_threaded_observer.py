"""Blocking observers: the contract and ThreadedObserver."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from helpers import Worker

from procman import ProcessManager
from procman.events import LifecycleEvent
from procman.observe.threaded import ThreadedObserver


class SlowSink:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.events: list[LifecycleEvent] = []
        self.threads: set[str] = set()

    def on_event(self, event: LifecycleEvent) -> None:
        time.sleep(self.delay)  # a blocking call: must never run on the loop
        self.threads.add(threading.current_thread().name)
        self.events.append(event)


async def test_blocking_observer_wrapped_cannot_stall_supervision() -> None:
    sink = SlowSink(0.05)
    obs = ThreadedObserver(sink)
    m = ProcessManager("root", observers=[obs])
    for i in range(10):
        m.insert(Worker(f"w{i}", exit_after=1, period=0.001))
    t0 = time.monotonic()
    await asyncio.wait_for(m.process_start(), 5)
    elapsed = time.monotonic() - t0
    # 30 events x 50 ms would take 1.5 s inline; the tree does not wait for the sink.
    assert elapsed < 1.0
    assert await asyncio.to_thread(obs.flush, 10)
    assert len(sink.events) == 30
    assert sink.threads and threading.main_thread().name not in sink.threads
    names = [e.name for e in sink.events if e.child == "w0"]
    assert names == ["procman.child.starting", "procman.child.started", "procman.child.stopped"]
    obs.close()


async def test_full_queue_drops_and_counts() -> None:
    gate = threading.Event()

    class Stuck:
        def on_event(self, event: LifecycleEvent) -> None:
            gate.wait(10)

    obs = ThreadedObserver(Stuck(), maxsize=2)
    m = ProcessManager("root", observers=[obs])
    for i in range(5):
        m.insert(Worker(f"w{i}", exit_after=1, period=0.001))
    await asyncio.wait_for(m.process_start(), 5)
    assert obs.dropped > 0
    gate.set()
    obs.close()


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        ThreadedObserver(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ThreadedObserver(SlowSink(0), maxsize=0)
