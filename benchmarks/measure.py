"""Timing and memory helpers used inside a worker process.

* :class:`PhaseClock` times phases with :func:`time.perf_counter` and can
  exclude bookkeeping (such as checking that all children run) from a phase;
  its ``before_first_phase`` hook lets the worker take the memory baseline
  after a configuration's set-up (observers, imports) and before its work.
* :class:`GcTimer` adds up the time the cyclic garbage collector runs.
* :func:`peak_rss_kib` / :func:`current_rss_kib` read ``VmHWM`` / ``VmRSS``
  from ``/proc/self/status`` (falling back to :func:`resource.getrusage`).
"""

from __future__ import annotations

import asyncio
import gc
import resource
import time
from collections.abc import Callable
from typing import Any


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_kib() -> int:
    """Peak resident set size of this process so far, in KiB."""
    value = _status_kib("VmHWM:")
    if value is None:
        value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value


def current_rss_kib() -> int:
    """Current resident set size, in KiB (0 when unknown)."""
    return _status_kib("VmRSS:") or 0


class PhaseClock:
    """Accumulates the time of named phases; ``pause``/``resume`` skip bookkeeping."""

    def __init__(self, before_first_phase: Callable[[], None] | None = None) -> None:
        self.phases: dict[str, float] = {}
        self._name: str | None = None
        self._t0 = 0.0
        self._before_first = before_first_phase
        self._paused = False
        self.marks: dict[str, int] = {}

    @property
    def timing(self) -> bool:
        """True while a phase runs and is not paused."""
        return self._name is not None and not self._paused

    def start(self, name: str) -> None:
        """Start (or continue) phase ``name``; the first call runs ``before_first_phase``."""
        if self._before_first is not None:
            hook, self._before_first = self._before_first, None
            hook()
        self._name = name
        self._paused = False
        self.phases.setdefault(name, 0.0)
        self._t0 = time.perf_counter()

    def stop(self) -> float:
        now = time.perf_counter()
        assert self._name is not None, "no phase running"
        if not self._paused:
            self.phases[self._name] += now - self._t0
        self._paused = False
        name, self._name = self._name, None
        return self.phases[name]

    def pause(self) -> None:
        now = time.perf_counter()
        assert self._name is not None and not self._paused, "no phase running"
        self.phases[self._name] += now - self._t0
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._t0 = time.perf_counter()


async def settle(clock: PhaseClock, all_running: Callable[[], bool], max_yields: int = 1000) -> int:
    """Yield to the loop until ``all_running()``; the checks are not timed.

    The cyclic GC is disabled during a check, so the garbage a check makes
    (a snapshot, say) never triggers a collection the timed work then misses.

    Records the resident set size at that moment in ``clock.marks["rss_running"]``.
    Returns how many yields it took. Raises RuntimeError when the children
    never all run (the measurement would be meaningless).
    """
    for i in range(1, max_yields + 1):
        await asyncio.sleep(0)
        clock.pause()
        enabled = gc.isenabled()
        gc.disable()
        try:
            ok = all_running()
            if ok:
                clock.marks["rss_running"] = current_rss_kib()
        finally:
            if enabled:
                gc.enable()
        clock.resume()
        if ok:
            return i
    raise RuntimeError(f"children not all running after {max_yields} loop iterations")


class GcTimer:
    """Times the cyclic-GC collections that happen while ``clock`` is timing a phase."""

    def __init__(self, clock: PhaseClock) -> None:
        self._clock = clock
        self._counting = False
        self.seconds = 0.0
        self.full_seconds = 0.0
        self.collections = 0
        self.full_collections = 0
        self._t0 = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._counting = self._clock.timing
            self._t0 = time.perf_counter()
            return
        if not self._counting:
            return
        spent = time.perf_counter() - self._t0
        self.seconds += spent
        self.collections += 1
        if info.get("generation") == 2:
            self.full_seconds += spent
            self.full_collections += 1

    def install(self) -> None:
        gc.callbacks.append(self._callback)

    def remove(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
