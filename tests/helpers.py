"""Shared test doubles: controllable workers; the recorder and waits come from procman.testing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from procman import (
    ChildState,
    Control,
    Next,
    ProcessControlHandler,
    Runnable,
    RuntimeContext,
    RuntimeControlMessage,
    RuntimeGuard,
    RuntimeHandle,
    SupervisorSnapshot,
    runnable,
)
from procman.testing import EventRecorder, wait_until

__all__ = [
    "Recorder",
    "SwallowsCancel",
    "Worker",
    "all_running",
    "wait_until",
    "waiting_worker",
]

Recorder = EventRecorder
"""The recording observer (``procman.testing.EventRecorder``; the name older tests use)."""


class Worker(Runnable):
    """Ticks every ``period``; stops on shutdown; counts reloads; can fail or hang."""

    def __init__(
        self,
        name: str = "worker",
        *,
        period: float = 0.01,
        fail_after: int | None = None,
        exit_after: int | None = None,
        exc: BaseException | None = None,
        ignore_shutdown: bool = False,
        on_reload: Callable[[], None] | None = None,
    ) -> None:
        self.guard = RuntimeGuard()
        self.name = name
        self.period = period
        self.fail_after = fail_after
        self.exit_after = exit_after
        self.exc = exc or RuntimeError(f"{name} failed")
        self.ignore_shutdown = ignore_shutdown
        self.on_reload = on_reload
        self.ticks = 0
        self.reloads = 0
        self.started = asyncio.Event()
        self.stopped_gracefully = False
        self.runs = 0

    def process_name(self) -> str:
        return self.name

    def process_handle(self) -> RuntimeHandle:
        return self.guard.handle()

    async def process_start(self) -> None:
        self.runs += 1
        ticker = self.guard.runtime_ticker()
        self.started.set()
        while True:
            match await ticker.tick(asyncio.sleep(self.period)):
                case Next():
                    self.ticks += 1
                    if self.fail_after is not None and self.ticks >= self.fail_after:
                        raise self.exc
                    if self.exit_after is not None and self.ticks >= self.exit_after:
                        return
                case Control(RuntimeControlMessage.SHUTDOWN):
                    if self.ignore_shutdown:
                        continue
                    self.stopped_gracefully = True
                    return
                case Control(RuntimeControlMessage.RELOAD):
                    self.reloads += 1
                    if self.on_reload is not None:
                        self.on_reload()
                case Control():
                    pass


class _IgnoreControl(ProcessControlHandler):
    async def shutdown(self) -> None:
        pass

    async def reload(self) -> None:
        pass


class SwallowsCancel(Runnable):
    """Ignores shutdown and swallows every cancellation until ``release`` is set.

    ``ended`` is set when its run returns (a test can wait for the late end).
    """

    def __init__(self, release: asyncio.Event, name: str = "Stubborn") -> None:
        self.release = release
        self.name = name
        self.ended = asyncio.Event()

    def process_name(self) -> str:
        return self.name

    def process_handle(self) -> ProcessControlHandler:
        return _IgnoreControl()

    async def process_start(self) -> None:
        try:
            while not self.release.is_set():
                with contextlib.suppress(asyncio.CancelledError):
                    await self.release.wait()
        finally:
            self.ended.set()


def waiting_worker(name: str) -> Runnable:
    """A context-style child that waits until shutdown (ignores other messages)."""

    async def work(ctx: RuntimeContext) -> None:
        while True:
            match await ctx.tick(asyncio.sleep(3600)):
                case Control(RuntimeControlMessage.SHUTDOWN):
                    return
                case Next() | Control():
                    pass

    return runnable(work, name=name)


def all_running(snap: SupervisorSnapshot) -> bool:
    """Every direct child has begun running (a ``wait_for_state`` predicate)."""
    return bool(snap.children) and all(c.state is ChildState.RUNNING for c in snap.children)
