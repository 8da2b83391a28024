"""Restart types, strategies and intensity: what a manager does when a child ends (internal)."""

from __future__ import annotations

import time
from collections import deque
from typing import Literal

from procman._state import SHUTDOWN, Cascade, ManagerState
from procman.child import ChildRecord
from procman.errors import RestartIntensityExceeded
from procman.events import ProcessRestarted, RestartCompleted, RestartRequested, RestartScheduled
from procman.policy import Restart, Strategy
from procman.snapshot import ChildState, ManagerPhase

__all__ = ["RestartMixin"]


class RestartMixin(ManagerState):
    """Decides and carries out restarts (ONE_FOR_ONE, ONE_FOR_ALL, REST_FOR_ONE)."""

    def _needs_restart(self, rec: ChildRecord, exc: BaseException | None) -> None:
        """``rec`` ended and its restart type asks for a restart: apply the policy."""
        if self._cascade is not None:  # decided once the group restart in progress is done
            rec.state = ChildState.BACKOFF
            self._waiting[rec] = None
            self._decisions.append((rec, exc))
            return
        max_restarts = self._max_restarts
        if max_restarts == 0 and exc is not None:  # the seed's rule
            self._retire(rec)
            self._child_failed(rec, exc)
            return
        now = time.monotonic()
        times = self._restart_times
        times.append(now)
        while times and times[0] <= now - self._within:
            times.popleft()
        if len(times) > max_restarts:
            self._retire(rec)
            error = RestartIntensityExceeded(rec.name, max_restarts, self._within)
            error.__cause__ = exc
            self._fail(error, f"{self._path}/{rec.name}")
            return
        if times.maxlen is None or len(times) > max_restarts + 1:  # bounded memory
            self._restart_times = deque(times, maxlen=max_restarts + 1)
        strategy = self._strategy
        members = [rec] if strategy is Strategy.ONE_FOR_ONE else self._group_of(rec)
        self._emit_restart_requested(rec, exc, members)
        if len(members) == 1:
            self._schedule_restart(rec, exc, time.monotonic())
        else:
            for m in members:
                m.cascade = True
                if m.timer is not None and m in self._waiting:  # its own restart joins the group
                    m.timer.cancel()
                    m.timer = None
                    self._restart_t0.pop(m, None)
            self._cascade = Cascade(rec, exc, members)
            rec.state = ChildState.BACKOFF
            self._waiting[rec] = None
            self._cascade_stop_next()

    def _group_of(self, rec: ChildRecord) -> list[ChildRecord]:
        """The children a group restart triggered by ``rec`` stops, in start order."""
        rest = self._strategy is Strategy.REST_FOR_ONE
        members = {rec}
        for other in (*self._live.values(), *self._waiting):
            if not rest or other.seq > rec.seq:
                members.add(other)
        return sorted(members, key=lambda r: r.seq)

    def _emit_restart_requested(
        self, rec: ChildRecord, exc: BaseException | None, members: list[ChildRecord]
    ) -> None:
        fan = self._fanout
        fan.emit_new(
            RestartRequested,
            lambda now: RestartRequested(
                supervisor=self._path,
                time=now,
                strategy=self._strategy.value,
                trigger=rec.name,
                children=tuple(m.name for m in members if m.spec.restart is not Restart.TEMPORARY),
                exception=exc,
            ),
        )

    def _delay_for(self, rec: ChildRecord) -> float:
        backoff = self._backoff
        if time.monotonic() - rec.run_start >= backoff.reset_threshold:
            rec.exponent = 0
        rec.exponent += 1
        return backoff.delay(rec.exponent)

    def _emit_scheduled(self, rec: ChildRecord, delay: float, exc: BaseException | None) -> None:
        fan = self._fanout
        fan.emit_new(
            RestartScheduled,
            lambda now: RestartScheduled(
                supervisor=self._path,
                child=rec.name,
                time=now,
                attempt=rec.restart_count + 1,
                delay=delay,
                exception=exc,
                strategy=self._strategy.value,
            ),
        )

    def _schedule_restart(self, rec: ChildRecord, exc: BaseException | None, t0: float) -> None:
        delay = self._delay_for(rec)
        rec.state = ChildState.BACKOFF
        self._waiting[rec] = None
        self._emit_scheduled(rec, delay, exc)
        assert self._loop is not None
        self._restart_t0[rec] = t0
        rec.timer = self._loop.call_later(delay, self._restart_one, rec)

    def _restart_one(self, rec: ChildRecord) -> None:
        rec.timer = None
        t0 = self._restart_t0.pop(rec, None)
        if self._phase is not ManagerPhase.RUNNING or rec not in self._waiting or t0 is None:
            return
        del self._waiting[rec]
        self._rerun(rec)
        self._emit_restart_completed(rec, t0)

    def _emit_restart_completed(
        self, trigger: ChildRecord, t0: float, result: Literal["ok", "cancelled"] = "ok"
    ) -> None:
        self._fanout.emit_new(
            RestartCompleted,
            lambda now: RestartCompleted(
                supervisor=self._path,
                time=now,
                strategy=self._strategy.value,
                trigger=trigger.name,
                duration=now - t0,
                start_time=t0,
                result=result,
            ),
        )

    def _rerun(self, rec: ChildRecord) -> None:
        """Start the next run of a restarted child (it keeps its place in the start order)."""
        rec.restart_count += 1
        rec.run_start = time.monotonic()
        rec.force_cancelled = False
        rec.state = ChildState.STARTING
        fan = self._fanout
        fan.emit_new(
            ProcessRestarted,
            lambda now: ProcessRestarted(
                supervisor=self._path,
                child=rec.name,
                time=now,
                attempt=rec.restart_count,
            ),
        )
        self._run(rec)

    def _cascade_stop_next(self) -> None:
        """Group restart: stop the next member (reverse start order), one at a time."""
        cascade = self._cascade
        assert cascade is not None and self._loop is not None
        while cascade.to_stop:
            rec = cascade.to_stop.pop(0)
            task = rec.task
            if task is None or self._live.get(task) is not rec:
                continue  # not running (in backoff, say): nothing to stop
            cascade.current = rec
            rec.state = ChildState.STOPPING
            timeout = rec.spec.shutdown_timeout
            rec.timer = self._loop.call_later(
                self._grace if timeout is None else timeout, self._force_cancel, rec
            )
            self._send(rec, SHUTDOWN)
            return
        # every other member has ended: wait the trigger's backoff, then restart the group
        trigger = cascade.trigger
        delay = self._delay_for(trigger)
        for rec in cascade.members:
            if rec.spec.restart is not Restart.TEMPORARY:
                self._emit_scheduled(rec, delay, cascade.exc if rec is trigger else None)
        cascade.timer = self._loop.call_later(delay, self._cascade_restart)

    def _cascade_member_ended(self, rec: ChildRecord) -> None:
        cascade = self._cascade
        assert cascade is not None
        if rec is self._starting:
            self._starting = None
        if rec.spec.restart is Restart.TEMPORARY:
            rec.cascade = False
            self._retire(rec)
        else:
            rec.state = ChildState.BACKOFF
            self._waiting[rec] = None
        if cascade.current is rec:
            cascade.current = None
            self._cascade_stop_next()

    def _cascade_restart(self) -> None:
        cascade = self._cascade
        if cascade is None or self._phase is not ManagerPhase.RUNNING:
            return
        self._cascade = None
        again = [m for m in cascade.members if m.spec.restart is not Restart.TEMPORARY]
        for rec in again:
            rec.cascade = False
            self._waiting.pop(rec, None)
        if self._ordered:
            self._pending.extendleft(reversed(again))
            self._start_next()
        else:
            for rec in again:
                self._rerun(rec)
        self._emit_restart_completed(cascade.trigger, cascade.t0)
        while self._decisions and self._cascade is None and self._phase is ManagerPhase.RUNNING:
            rec, exc = self._decisions.popleft()
            if self._waiting.pop(rec, 0) is None:
                self._needs_restart(rec, exc)
