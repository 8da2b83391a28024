"""A virtual-time event loop for property tests: timers fire in order, without real waiting.

``loop.time()`` starts at 0 and only moves when the loop would otherwise wait:
then it jumps to the next timer. Each loop iteration also advances it by a tiny
``QUANTUM``, so a busy loop (a zero-delay crash loop, say) still reaches its
deadlines. Asyncio timers (``asyncio.sleep``, ``call_later``, the manager's grace
and readiness timers, ``asyncio.wait_for``) run on this clock, so durations
drawn by a test are exact, a loaded machine changes nothing, and the same
drawn scenario runs the same way every time.

:func:`run_virtual` also points the ``time`` module seen by every ``procman.*``
module that imports it (``procman.manager``, ``procman.child``, ...) at the
virtual clock (``monotonic``: event timestamps and the intensity window;
``time``: wall-clock views and the backoff reset), so restart windows are exact
too. Nothing outside procman is affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import sys
import time
import types
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

QUANTUM = 1e-5
"""Virtual seconds each loop iteration takes."""
EPOCH = 1_800_000_000.0
"""The virtual wall clock's time at virtual monotonic time 0."""


class _VirtualSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)  # the self-pipe (call_soon_threadsafe) stays real
        if ready:
            self.now += QUANTUM
            return ready
        if timeout is None:  # nothing scheduled at all: only a thread can wake us
            return super().select(None)
        self.now += max(timeout, QUANTUM)
        return []


class VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._vselector = _VirtualSelector()
        super().__init__(self._vselector)

    def time(self) -> float:
        return self._vselector.now


@contextlib.contextmanager
def _procman_on(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    clock = types.SimpleNamespace(monotonic=loop.time, time=lambda: EPOCH + loop.time())
    modules = [
        m
        for name, m in list(sys.modules.items())
        if (name == "procman" or name.startswith("procman.")) and getattr(m, "time", None) is time
    ]
    for m in modules:
        m.time = clock  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for m in modules:
            m.time = time  # type: ignore[attr-defined]


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` on a :class:`VirtualClockLoop`, procman on its clock."""
    with (
        asyncio.Runner(loop_factory=VirtualClockLoop) as runner,
        _procman_on(runner.get_loop()),
    ):
        return runner.run(coro)
