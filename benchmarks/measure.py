"""Timing and memory helpers used inside a worker process.

* :class:`PhaseClock` times phases with :func:`time.perf_counter` and can
  exclude bookkeeping (such as checking that all children run) from a phase;
  its ``before_first_phase`` hook lets the worker take the memory baseline
  after a configuration's set-up (observers, imports) and before its work.
* :func:`peak_rss_kib` / :func:`current_rss_kib` read ``VmHWM`` / ``VmRSS``
  from ``/proc/self/status`` (falling back to :func:`resource.getrusage`).
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Callable


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
        self.marks: dict[str, int] = {}

    def start(self, name: str) -> None:
        """Start (or continue) phase ``name``; the first call runs ``before_first_phase``."""
        if self._before_first is not None:
            hook, self._before_first = self._before_first, None
            hook()
        self._name = name
        self.phases.setdefault(name, 0.0)
        self._t0 = time.perf_counter()

    def stop(self) -> float:
        now = time.perf_counter()
        assert self._name is not None, "no phase running"
        self.phases[self._name] += now - self._t0
        name, self._name = self._name, None
        return self.phases[name]

    def pause(self) -> None:
        now = time.perf_counter()
        assert self._name is not None, "no phase running"
        self.phases[self._name] += now - self._t0

    def resume(self) -> None:
        self._t0 = time.perf_counter()


async def settle(clock: PhaseClock, all_running: Callable[[], bool], max_yields: int = 1000) -> int:
    """Yield to the loop until ``all_running()``; the checks are not timed.

    Records the resident set size at that moment in ``clock.marks["rss_running"]``.
    Returns how many yields it took. Raises RuntimeError when the children
    never all run (the measurement would be meaningless).
    """
    for i in range(1, max_yields + 1):
        await asyncio.sleep(0)
        clock.pause()
        ok = all_running()
        if ok:
            clock.marks["rss_running"] = current_rss_kib()
        clock.resume()
        if ok:
            return i
    raise RuntimeError(f"children not all running after {max_yields} loop iterations")
