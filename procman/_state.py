"""The state the parts of a ProcessManager share, and small helpers (internal).

:class:`procman.ProcessManager` is assembled from one class per concern:
:mod:`procman._readiness` (readiness and the ordered start),
:mod:`procman._restarts` (restart types, strategies, intensity),
:mod:`procman._shutdown` (graceful shutdown, timeouts, abandonment, reload),
:mod:`procman._runs` (starting runs, a run's end), :mod:`procman._snapshots`
and :mod:`procman.manager` (configuration, children, the run of the tree). This module declares
the attributes they share and the hooks they call on each other.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Literal

from procman.child import ChildRecord, Owner
from procman.observer import Fanout
from procman.policy import ChildSpec, RestartBackoff, Strategy
from procman.runnable import Runnable, RuntimeControlMessage
from procman.snapshot import ManagerPhase

__all__ = ["Cascade", "ManagerState"]

log = logging.getLogger("procman")

SHUTDOWN = RuntimeControlMessage.SHUTDOWN
RELOAD = RuntimeControlMessage.RELOAD
_NOTE_PREFIX = "procman: raised by process "


async def await_(awaitable: Awaitable[None]) -> None:
    await awaitable


def wake_all(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
    waiters.clear()


def note_origin(exc: BaseException, path: str) -> None:
    notes = getattr(exc, "__notes__", ())
    if not any(isinstance(n, str) and n.startswith(_NOTE_PREFIX) for n in notes):
        exc.add_note(_NOTE_PREFIX + path)


def cancel_timer(timer: asyncio.TimerHandle | None) -> None:
    if timer is not None:
        timer.cancel()


class Cascade:
    """One ONE_FOR_ALL / REST_FOR_ONE restart in progress."""

    __slots__ = ("current", "exc", "members", "t0", "timer", "to_stop", "trigger")

    def __init__(
        self, trigger: ChildRecord, exc: BaseException | None, members: list[ChildRecord]
    ) -> None:
        self.trigger = trigger
        self.exc = exc
        self.members = members  # start order
        self.to_stop = [m for m in reversed(members) if m is not trigger]
        self.current: ChildRecord | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.t0 = time.monotonic()


class ManagerState:
    """What every part of a manager reads and writes (declared once, set in ``__init__``)."""

    _name: str
    _auto_cleanup: bool
    _grace: float
    _cancel_timeout: float
    _strategy: Strategy
    _max_restarts: int
    _within: float
    _backoff: RestartBackoff
    _ordered: bool
    _phase: ManagerPhase
    _path: str
    _fanout: Fanout
    _parent: Owner | None
    _parent_record: ChildRecord | None
    _live: dict[asyncio.Task[None], ChildRecord]
    _waiting: dict[ChildRecord, None]
    _pending: deque[ChildRecord]
    _starting: ChildRecord | None
    _spawning: ChildRecord | None
    _seq: int
    _context: contextvars.Context | None
    _done_callback: Callable[[asyncio.Task[None]], None]
    _stop_order: list[ChildRecord] | None
    _stopping: ChildRecord | None
    _cascade: Cascade | None
    _decisions: deque[tuple[ChildRecord, BaseException | None]]
    _restart_times: deque[float]
    _restart_t0: dict[ChildRecord, float]
    _unready: int
    _signalled: bool
    _finished: list[ChildRecord]
    _first_error: BaseException | None
    _loop: asyncio.AbstractEventLoop | None
    _ended: asyncio.Future[None] | None
    _ready_waiters: list[asyncio.Future[None]]
    _control_tasks: set[asyncio.Task[None]]
    _grace_timer: asyncio.TimerHandle | None
    _grace_deadline: float
    _abandon_timer: asyncio.TimerHandle | None
    _doomed: dict[ChildRecord, float]
    _shutdown_pending: bool
    _shutdown_started: float | None
    _forced: int

    def _busy(self) -> bool:
        return bool(self._live or self._waiting or self._pending)

    def _retire(self, rec: ChildRecord) -> None:
        if not self._auto_cleanup:
            self._finished.append(rec)

    def _child_failed(self, rec: ChildRecord, exc: BaseException) -> None:
        self._fail(exc, f"{self._path}/{rec.name}")

    def _fail(self, exc: BaseException, origin: str) -> None:
        note_origin(exc, origin)
        if self._first_error is None:
            self._first_error = exc
        self._begin_shutdown("failure", exc)

    # -- hooks implemented by the other parts ------------------------------------------
    def _run(self, rec: ChildRecord) -> None:
        raise NotImplementedError

    def _rerun(self, rec: ChildRecord) -> None:
        raise NotImplementedError

    def _start_next(self) -> None:
        raise NotImplementedError

    def _check_ready(self) -> None:
        raise NotImplementedError

    def _begin_shutdown(self, reason: str, exc: BaseException | None) -> None:
        raise NotImplementedError

    def _send(self, rec: ChildRecord, message: RuntimeControlMessage) -> asyncio.Task[None] | None:
        raise NotImplementedError

    def _force_cancel(self, rec: ChildRecord) -> None:
        raise NotImplementedError

    def _all_ended(self) -> None:
        raise NotImplementedError

    def _first_run(self, rec: ChildRecord) -> None:
        raise NotImplementedError

    def _new_record(
        self, runnable: Runnable, name: str, spec: ChildSpec, now: float | None = None
    ) -> ChildRecord:
        raise NotImplementedError

    def _needs_restart(self, rec: ChildRecord, exc: BaseException | None) -> None:
        raise NotImplementedError

    def _cascade_member_ended(self, rec: ChildRecord) -> None:
        raise NotImplementedError

    def _ready_expired(self, rec: ChildRecord) -> None:
        raise NotImplementedError

    def _stop_next(self) -> None:
        raise NotImplementedError

    def _emit_restart_completed(
        self, trigger: ChildRecord, t0: float, result: Literal["ok", "cancelled"] = "ok"
    ) -> None:
        raise NotImplementedError

    async def wait_started(self) -> None:
        raise NotImplementedError
