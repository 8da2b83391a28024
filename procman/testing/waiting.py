"""Waiting helpers: wait for an event or a tree state instead of sleeping.

Each helper returns what it waited for and, after ``timeout`` seconds, raises
:class:`WaitTimeout` (an ``AssertionError``, so pytest shows it as a test
failure) naming what was awaited and what was seen::

    rec = EventRecorder()
    root = ProcessManager("root", observers=[rec])
    root.insert(Worker("w"))
    task = asyncio.create_task(root.process_start())

    started = await wait_for_event(rec, ProcessStarted, child="w")
    await wait_for_child_state(root, "w", ChildState.RUNNING, recorder=rec)
    snap = await wait_for_state(root, lambda s: s.ready, recorder=rec)
    await wait_until(lambda: worker.ticks >= 3)

How they wait:

* :func:`wait_for_event` never polls: the recorder resolves a future the
  moment a matching event arrives (events recorded before the call count
  too, so there is no race with a fast child).
* :func:`wait_for_state` / :func:`wait_for_child_state` re-check the
  snapshot on every event of ``recorder``. procman has no "snapshot changed"
  notification, and some changes come without an event (a child's state
  becomes ``stopped`` in its task's done callback, just *after* its terminal
  event; a manager without observers emits nothing), so between events they
  also re-check on a short bounded poll: after 1 ms, doubling up to 20 ms.
* :func:`wait_until` checks an arbitrary predicate: with a ``recorder`` on
  every event, and on the same bounded poll.

They take ``timeout=`` instead of leaving it to an outer ``asyncio.timeout()``
because the bound is part of the failure message (what was awaited, for how
long, and what was seen by then).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Collection
from typing import Protocol, TypeVar

from procman.events import ChildEvent, LifecycleEvent
from procman.snapshot import ChildSnapshot, ChildState, SupervisorSnapshot
from procman.testing.recorder import E, EventRecorder

__all__ = [
    "DEFAULT_TIMEOUT",
    "WaitTimeout",
    "describe_snapshot",
    "find_child",
    "wait_for_child_state",
    "wait_for_event",
    "wait_for_state",
    "wait_until",
]

DEFAULT_TIMEOUT = 5.0
"""Seconds a helper waits by default: generous, since it only matters when a test fails."""

_POLL_FIRST = 0.001
_POLL_MAX = 0.02

T = TypeVar("T")


class SupportsSnapshot(Protocol):
    """What the state helpers need: a :class:`procman.ProcessManager`, for one."""

    def snapshot(self) -> SupervisorSnapshot: ...


class WaitTimeout(AssertionError):
    """A waiting helper gave up: ``what`` was awaited, ``seen`` is what happened instead."""

    def __init__(self, what: str, seen: str, timeout: float) -> None:
        super().__init__(f"timed out after {timeout:g}s waiting for {what}\nseen: {seen}")
        self.what = what
        self.seen = seen
        self.timeout = timeout


# -- descriptions --------------------------------------------------------------------
def describe_snapshot(snap: SupervisorSnapshot) -> str:
    """The tree in a few lines: each supervisor's phase and its children's states."""
    lines = []
    for sup in snap.walk():
        children = ", ".join(
            f"{c.name}={c.state.value}"
            + (f" (restarts {c.restart_count})" if c.restart_count else "")
            for c in sup.children
        )
        lines.append(f"  {sup.path} [{sup.phase.value}]: {children or 'no children'}")
    return "snapshot:\n" + "\n".join(lines)


def _describe_callable(fn: Callable[..., object]) -> str:
    """A lambda's source line (what a reader wrote), else the function's name."""
    name = getattr(fn, "__qualname__", None) or repr(fn)
    if name.endswith("<lambda>"):
        try:
            source = inspect.getsource(fn).strip()
        except (OSError, TypeError):
            return name
        source = " ".join(source.split())
        return source if len(source) <= 200 else source[:197] + "..."
    return name


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def find_child(snap: SupervisorSnapshot, child: str) -> ChildSnapshot | None:
    """The child at ``child`` (a name, or a path relative to ``snap``: ``db/consumer``)."""
    *nested, name = child.split("/")
    sup: SupervisorSnapshot | None = snap
    for part in nested:
        found = next((c for c in sup.children if c.name == part), None) if sup else None
        sup = found.supervisor if found is not None else None
    if sup is None:
        return None
    # The latest record wins: with auto_cleanup=False a restarted name may appear twice.
    matches = [c for c in sup.children if c.name == name]
    return matches[-1] if matches else None


# -- events --------------------------------------------------------------------------
async def wait_for_event(
    recorder: EventRecorder,
    event_type: type[E],
    *,
    child: str | None = None,
    where: Callable[[E], bool] | None = None,
    count: int = 1,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 (it names the wait in WaitTimeout)
) -> E:
    """Wait until ``recorder`` holds ``count`` events of ``event_type`` and return the last one.

    ``child`` keeps only events about that child (its name); ``where`` is any
    further condition on the event. Events recorded before the call count, so
    ``count=2`` waits for the second run of a restarted child. No polling: the
    recorder wakes the waiter when the event arrives.
    """

    def match(event: LifecycleEvent) -> bool:
        if not isinstance(event, event_type):
            return False
        if child is not None and (not isinstance(event, ChildEvent) or event.child != child):
            return False
        return where is None or where(event)

    future = recorder.subscribe(match, count=count, recorded=True)
    try:
        event = await asyncio.wait_for(future, timeout)
    except TimeoutError:
        raise WaitTimeout(
            _describe_event_wait(event_type, child, where, count), recorder.describe(), timeout
        ) from None
    finally:
        recorder.unsubscribe(future)
    assert isinstance(event, event_type)
    return event


def _describe_event_wait(
    event_type: type[LifecycleEvent],
    child: str | None,
    where: Callable[[E], bool] | None,
    count: int,
) -> str:
    what = f"{event_type.__name__} ({event_type.name})"
    if count > 1:
        what = f"the {_ordinal(count)} {what}"
    if child is not None:
        what += f" of child {child!r}"
    if where is not None:
        what += f" where {_describe_callable(where)}"
    return what


# -- conditions ----------------------------------------------------------------------
async def _until(
    check: Callable[[], T | None],
    *,
    what: str,
    seen: Callable[[], str],
    timeout: float,  # noqa: ASYNC109
    recorder: EventRecorder | None,
) -> T:
    """Return ``check()``'s first non-None result, re-checked per event and on a bounded poll."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = _POLL_FIRST
    while True:
        result = check()
        if result is not None:
            return result
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise WaitTimeout(what, seen(), timeout)
        pause = min(delay, remaining)
        if recorder is not None and not recorder.closed:
            future = recorder.subscribe(_any_event)
            try:
                done, _ = await asyncio.wait((future,), timeout=pause)
            finally:
                recorder.unsubscribe(future)
            # An event: re-check now, and soon again (the state may settle a moment later).
            delay = _POLL_FIRST if done else min(delay * 2, _POLL_MAX)
        else:
            await asyncio.sleep(pause)
            delay = min(delay * 2, _POLL_MAX)


def _any_event(event: LifecycleEvent) -> bool:
    return True


async def wait_until(
    predicate: Callable[[], object],
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 (it names the wait in WaitTimeout)
    *,
    recorder: EventRecorder | None = None,
    what: str | None = None,
) -> None:
    """Wait until ``predicate()`` is true (re-checked on each event of ``recorder`` and
    on a bounded poll, see the module docstring).

    Prefer :func:`wait_for_event` or an ``asyncio.Event`` your code sets when
    such a condition exists. ``what`` describes the condition in the failure
    message (default: the lambda's source line); with a ``recorder`` the
    message also lists its last events.
    """
    description = what or _describe_callable(predicate)

    def seen() -> str:
        return recorder.describe() if recorder is not None else "the predicate stayed false"

    await _until(
        lambda: True if predicate() else None,
        what=description,
        seen=seen,
        timeout=timeout,
        recorder=recorder,
    )


async def wait_for_state(
    manager: SupportsSnapshot,
    predicate: Callable[[SupervisorSnapshot], object],
    *,
    recorder: EventRecorder | None = None,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 (it names the wait in WaitTimeout)
    what: str | None = None,
) -> SupervisorSnapshot:
    """Wait until ``predicate(manager.snapshot())`` is true and return that snapshot.

    Pass the ``recorder`` attached to the tree so the check reruns on every
    event; the failure message shows the last snapshot (and the recorder's
    last events).
    """
    description = what or _describe_callable(predicate)
    latest: list[SupervisorSnapshot] = []

    def check() -> SupervisorSnapshot | None:
        snap = manager.snapshot()
        latest[:] = [snap]
        return snap if predicate(snap) else None

    def seen() -> str:
        return _seen(latest, recorder)

    return await _until(check, what=description, seen=seen, timeout=timeout, recorder=recorder)


async def wait_for_child_state(
    manager: SupportsSnapshot,
    child: str,
    state: ChildState | Collection[ChildState],
    *,
    recorder: EventRecorder | None = None,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 (it names the wait in WaitTimeout)
) -> ChildSnapshot:
    """Wait until ``child`` (a name or a nested path, ``db/consumer``) is in ``state``.

    ``state`` may be one state or several (``{ChildState.STOPPED, ChildState.FAILED}``).
    Returns the child's snapshot.
    """
    states = frozenset((state,) if isinstance(state, ChildState) else state)
    wanted = " or ".join(sorted(s.value for s in states))
    latest: list[SupervisorSnapshot] = []

    def check() -> ChildSnapshot | None:
        snap = manager.snapshot()
        latest[:] = [snap]
        found = find_child(snap, child)
        return found if found is not None and found.state in states else None

    def seen() -> str:
        return _seen(latest, recorder)

    return await _until(
        check,
        what=f"child {child!r} to be {wanted}",
        seen=seen,
        timeout=timeout,
        recorder=recorder,
    )


def _seen(latest: list[SupervisorSnapshot], recorder: EventRecorder | None) -> str:
    parts = [describe_snapshot(latest[0]) if latest else "no snapshot taken"]
    if recorder is not None:
        parts.append(recorder.describe())
    return "\n".join(parts)
