"""Run a tree for the length of a test and always shut it down afterwards.

::

    async with run_tree(root, recorder=rec) as tree:
        await wait_for_event(rec, ProcessStarted, child="w")
        ...  # the test
    # here the tree has ended: shut down gracefully, or the block raised

On leaving the block the tree is shut down through its handle (bounded by
``shutdown_timeout``) and its task awaited. The exit fails with
:class:`TreeNotClean` (an ``AssertionError``) when the tree hung (did not
stop within the bound: it is then cancelled), when its task leaked (still
running after that), when it ended with an error nobody looked at (a test
that expects the failure awaits :meth:`RunningTree.wait` or
:meth:`RunningTree.shutdown`, which re-raise it) or when the recorder saw a
child abandoned (a task that ignored cancellation, still running somewhere).
When the block itself raised, that exception wins and the tree is still
shut down.

The ``running_tree`` pytest fixture (:mod:`procman.testing.pytest_plugin`)
is this, for as many trees as a test starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from procman import ManagerPhase, ManagerStateError, ProcessManager, SupervisorSnapshot
from procman.events import ProcessAbandoned
from procman.testing.recorder import EventRecorder, describe_event
from procman.testing.waiting import DEFAULT_TIMEOUT, WaitTimeout, describe_snapshot

__all__ = ["RunningTree", "RunningTreeFactory", "TreeNotClean", "run_tree", "start_tree"]


class TreeNotClean(AssertionError):
    """A tree did not end cleanly: it hung, leaked a task or hid an error."""


class RunningTree:
    """A manager started as a task by :func:`start_tree` / :func:`run_tree`."""

    def __init__(
        self,
        manager: ProcessManager,
        task: asyncio.Task[None],
        *,
        recorder: EventRecorder | None,
        shutdown_timeout: float,
    ) -> None:
        self.manager = manager
        self.task = task
        self.recorder = recorder
        self.shutdown_timeout = shutdown_timeout
        self._outcome_checked = False
        self._closed = False

    @property
    def done(self) -> bool:
        """Whether the manager's ``process_start`` has returned (or raised)."""
        return self.task.done()

    def snapshot(self) -> SupervisorSnapshot:
        return self.manager.snapshot()

    async def wait(self, timeout: float = DEFAULT_TIMEOUT) -> None:  # noqa: ASYNC109
        """Wait for the tree to end by itself; re-raise its error (the test has seen it)."""
        done, _ = await asyncio.wait((self.task,), timeout=timeout)
        if not done:
            raise WaitTimeout(
                f"tree {self.manager.path!r} to end", describe_snapshot(self.snapshot()), timeout
            )
        self._outcome_checked = True
        self.task.result()

    async def shutdown(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Shut the tree down through its handle and wait for its task; re-raise its error."""
        bound = self.shutdown_timeout if timeout is None else timeout
        if not self.task.done():
            try:
                await asyncio.wait_for(self.manager.process_handle().shutdown(), bound)
            except TimeoutError:
                raise WaitTimeout(
                    f"tree {self.manager.path!r} to shut down",
                    describe_snapshot(self.snapshot()),
                    bound,
                ) from None
        await self.wait(bound)

    async def close(self) -> list[str]:
        """Shut down (bounded), await the task and return what was not clean (empty: clean).

        Idempotent; what :func:`run_tree` and the ``running_tree`` fixture call at the end.
        """
        if self._closed:
            return []
        self._closed = True
        path = self.manager.path
        problems: list[str] = []
        task = self.task
        if not task.done():
            bound = self.shutdown_timeout
            try:
                await asyncio.wait_for(self.manager.process_handle().shutdown(), bound)
                # stopped: process_start returns within a step or two
                await asyncio.wait((task,), timeout=bound)
            except TimeoutError:
                problems.append(
                    f"tree {path!r} hung: not shut down within {bound:g}s, cancelling it; "
                    + describe_snapshot(self.snapshot())
                )
            # A second cancel makes a manager abandon children that swallow the first.
            for _ in range(2):
                if task.done():
                    break
                task.cancel()
                await asyncio.wait((task,), timeout=bound)
            if not task.done():
                problems.append(
                    f"tree {path!r} leaked: its task {task!r} still runs after cancellation"
                )
        if task.done() and not task.cancelled() and not self._outcome_checked:
            exc = task.exception()
            if exc is not None:
                problems.append(
                    f"tree {path!r} ended with an error the test did not check: {exc!r} "
                    "(await tree.wait() or tree.shutdown() to assert on it)"
                )
        if self.recorder is not None:
            abandoned = self.recorder.of(ProcessAbandoned)
            if abandoned:
                listed = ", ".join(describe_event(e) for e in abandoned)
                problems.append(
                    f"tree {path!r} abandoned children whose tasks ignored cancellation "
                    f"(leaked tasks): {listed}"
                )
        return problems

    def __repr__(self) -> str:
        return f"<RunningTree {self.manager!r} done={self.done}>"


class RunningTreeFactory(Protocol):
    """The type of the ``running_tree`` fixture: :func:`start_tree`, closed at teardown."""

    async def __call__(
        self,
        manager: ProcessManager,
        *,
        recorder: EventRecorder | None = ...,
        ready: bool = ...,
        start_timeout: float = ...,
        shutdown_timeout: float = ...,
    ) -> RunningTree: ...


async def start_tree(
    manager: ProcessManager,
    *,
    recorder: EventRecorder | None = None,
    ready: bool = False,
    start_timeout: float = DEFAULT_TIMEOUT,
    shutdown_timeout: float = DEFAULT_TIMEOUT,
) -> RunningTree:
    """Start ``manager.process_start()`` as a task and return once it started its children.

    "Started" is :meth:`ProcessManager.wait_started`: the children are
    scheduled, not necessarily running; wait for their events or states next.
    With ``ready=True`` it returns once the whole tree is ready
    (:meth:`ProcessManager.wait_ready`). Fails with :class:`WaitTimeout` when
    the manager does not get there within ``start_timeout`` (the tree is then
    cancelled) and re-raises what ``process_start`` raised if it ended before.
    ``recorder`` is the recorder attached to the tree, checked at the end for
    abandoned children. The caller must :meth:`RunningTree.close` the tree:
    prefer :func:`run_tree` or the ``running_tree`` fixture, which always do.
    """
    if manager.phase in (ManagerPhase.RUNNING, ManagerPhase.STOPPING):
        raise ManagerStateError(f"manager {manager.path!r} is already running")
    task = asyncio.create_task(manager.process_start(), name=f"procman-tree:{manager.name}")
    waiter = asyncio.ensure_future(manager.wait_ready() if ready else manager.wait_started())
    try:
        await asyncio.wait((task, waiter), timeout=start_timeout, return_when="FIRST_COMPLETED")
    except BaseException:
        task.cancel()
        raise
    finally:
        reached = waiter.done() and not waiter.cancelled()
        if not waiter.done():
            waiter.cancel()
    if not reached and task.done():
        task.result()  # process_start raised (or returned) before getting there
    elif not reached:
        seen = describe_snapshot(manager.snapshot())
        task.cancel()
        await asyncio.wait((task,), timeout=shutdown_timeout)
        what = f"manager {manager.path!r} to {'be ready' if ready else 'start'}"
        raise WaitTimeout(what, seen + "\n(the tree was cancelled)", start_timeout)
    return RunningTree(manager, task, recorder=recorder, shutdown_timeout=shutdown_timeout)


@asynccontextmanager
async def run_tree(
    manager: ProcessManager,
    *,
    recorder: EventRecorder | None = None,
    ready: bool = False,
    start_timeout: float = DEFAULT_TIMEOUT,
    shutdown_timeout: float = DEFAULT_TIMEOUT,
) -> AsyncIterator[RunningTree]:
    """Run ``manager`` for the ``async with`` block (arguments: :func:`start_tree`).

    See the module docstring for what the exit checks.
    """
    tree = await start_tree(
        manager,
        recorder=recorder,
        ready=ready,
        start_timeout=start_timeout,
        shutdown_timeout=shutdown_timeout,
    )
    try:
        yield tree
    except BaseException:
        await tree.close()  # the block's exception wins
        raise
    problems = await tree.close()
    if problems:
        raise TreeNotClean("\n".join(problems))
