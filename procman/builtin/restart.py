"""RestartSupervisor: restarts a failing child with exponential backoff."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from datetime import timedelta
from typing import TYPE_CHECKING

from procman._validate import check_runnable, seconds
from procman.errors import RestartIntensityExceeded
from procman.events import ProcessRestarted, RestartScheduled
from procman.lowlevel import STANDALONE, ChildRecord, current_record, run_observed
from procman.manager import ProcessManager
from procman.policy import RestartBackoff
from procman.runnable import ProcessControlHandler, Runnable, RuntimeControlMessage
from procman.snapshot import ChildState

if TYPE_CHECKING:
    from typing import Self

__all__ = ["RestartBackoff", "RestartIntensityExceeded", "RestartSupervisor"]


class RestartSupervisor(Runnable):
    """Runs ``child`` and restarts it whenever it raises.

    * The first restart waits ``backoff.initial``; later ones grow by
      ``factor`` up to ``max``.
    * A child that returns normally ends the supervisor normally.
    * A shutdown is forwarded to the running child and cuts a backoff short;
      the supervisor then returns ``None`` (a failure during the shutdown is
      reported but not restarted and not raised).
    * A reload is forwarded to the running child (dropped during a backoff).
    * With :meth:`intensity`, more than ``max_restarts`` failures within
      ``within`` seconds raise :class:`RestartIntensityExceeded` (default:
      unlimited restarts).

    Its :meth:`process_name` is the child's; each run of the child is reported
    as a run of that name with its ``restart_count``.
    """

    procman_reports_runs = True

    def __init__(
        self,
        child: Runnable,
        backoff: RestartBackoff | None = None,
        *,
        max_restarts: int | None = None,
        within: float | timedelta = 60.0,
    ) -> None:
        self._child = check_runnable(child, "child")
        self._backoff = RestartBackoff()
        if backoff is not None:
            self.backoff(backoff)
        self._max_restarts: int | None = None
        self._within = 60.0
        if max_restarts is not None:
            self.intensity(max_restarts, within)
        self._stopping = False
        self._child_running = False
        self._wake: asyncio.Future[None] | None = None
        self._restart_count = 0
        self._handle = _SupervisorHandle(self)

    def backoff(self, backoff: RestartBackoff) -> Self:
        """Set the backoff policy (returns the supervisor)."""
        if not isinstance(backoff, RestartBackoff):
            raise TypeError(f"backoff must be a RestartBackoff, got {type(backoff).__name__}")
        self._backoff = backoff
        return self

    def intensity(self, max_restarts: int, within: float | timedelta = 60.0) -> Self:
        """Give up after more than ``max_restarts`` restarts within ``within`` seconds."""
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int):
            raise TypeError(f"max_restarts must be an int, got {max_restarts!r}")
        if max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {max_restarts!r}")
        self._max_restarts = max_restarts
        self._within = seconds(within, "within", allow_zero=False)
        return self

    @property
    def child(self) -> Runnable:
        return self._child

    @property
    def restart_count(self) -> int:
        """How many times the child has been restarted in the current run."""
        return self._restart_count

    def process_name(self) -> str:
        return self._child.process_name()

    def procman_nested_manager(self) -> ProcessManager | None:
        """The wrapped child when it is a manager (snapshots show its subtree)."""
        child = self._child
        return child if isinstance(child, ProcessManager) else None

    def process_handle(self) -> ProcessControlHandler:
        return self._handle

    async def process_start(self) -> None:
        rec = current_record()
        if rec is None or rec.runnable is not self:
            rec = ChildRecord(STANDALONE, self, self.process_name())
        self._restart_count = rec.restart_count = 0
        failures: deque[float] = deque()
        exponent = 0
        child = self._child
        try:
            while not self._stopping:
                t0 = time.monotonic()
                self._child_running = True
                try:
                    await run_observed(rec, child.process_start)
                    return
                except Exception as exc:
                    if self._stopping:
                        return
                    error = exc
                finally:
                    self._child_running = False
                now = time.monotonic()
                if self._max_restarts is not None:
                    failures.append(now)
                    while failures and failures[0] <= now - self._within:
                        failures.popleft()
                    if len(failures) > self._max_restarts:
                        raise RestartIntensityExceeded(
                            rec.name, self._max_restarts, self._within
                        ) from error
                if now - t0 >= self._backoff.reset_threshold:
                    exponent = 0
                exponent += 1
                delay = self._backoff.delay(exponent)
                attempt = rec.restart_count + 1
                rec.state = ChildState.BACKOFF
                _report_scheduled(rec, attempt, delay, error)
                del error
                if not await self._sleep(delay):
                    return
                self._restart_count = rec.restart_count = attempt
                rec.run_start = time.monotonic()
                _report_restarted(rec, attempt)
        finally:
            self._stopping = False

    async def _sleep(self, delay: float) -> bool:
        """Wait ``delay`` seconds; False when a shutdown cut the wait short."""
        if self._stopping:
            return False
        if delay <= 0:  # no timer for a zero backoff: one loop iteration
            await asyncio.sleep(0)
            return not self._stopping
        loop = asyncio.get_running_loop()
        wake = self._wake = loop.create_future()
        timer = loop.call_later(delay, _set_once, wake)
        try:
            await wake
        finally:
            timer.cancel()
            self._wake = None
        return not self._stopping

    def _request_stop(self) -> None:
        self._stopping = True
        wake = self._wake
        if wake is not None:
            _set_once(wake)

    def __repr__(self) -> str:
        return f"<RestartSupervisor of {self._child.process_name()!r}>"


def _report_scheduled(rec: ChildRecord, attempt: int, delay: float, error: Exception) -> None:
    rec.owner.fanout.emit_new(
        RestartScheduled,
        lambda now: RestartScheduled(
            supervisor=rec.owner.path,
            child=rec.name,
            time=now,
            attempt=attempt,
            delay=delay,
            exception=error,
        ),
    )


def _report_restarted(rec: ChildRecord, attempt: int) -> None:
    rec.owner.fanout.emit_new(
        ProcessRestarted,
        lambda now: ProcessRestarted(
            supervisor=rec.owner.path, child=rec.name, time=now, attempt=attempt
        ),
    )


def _set_once(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _SupervisorHandle(ProcessControlHandler):
    __slots__ = ("_sup",)

    def __init__(self, sup: RestartSupervisor) -> None:
        self._sup = sup

    async def shutdown(self) -> None:
        sup = self._sup
        sup._request_stop()
        if sup._child_running:
            await sup._child.process_handle().shutdown()

    async def reload(self) -> None:
        sup = self._sup
        if sup._child_running:
            await sup._child.process_handle().reload()

    def control_nowait(self, message: RuntimeControlMessage) -> bool:
        sup = self._sup
        if message is RuntimeControlMessage.SHUTDOWN:
            sup._request_stop()
            if not sup._child_running:
                return True
        elif not sup._child_running:
            return True
        return sup._child.process_handle().control_nowait(message)
