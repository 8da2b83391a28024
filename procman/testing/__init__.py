"""procman.testing: helpers for testing your own runnables and trees.

Standard library only (pytest is imported by the plugin module alone, which
pytest loads through the ``pytest11`` entry point).

* :class:`EventRecorder` / :func:`capture_events`: an observer that keeps
  every event; ``rec.of(ProcessFailed)`` is a ``list[ProcessFailed]``;
  ``with capture_events(root) as rec:`` attaches one to a tree for a block.
* :func:`wait_for_event`, :func:`wait_for_state`,
  :func:`wait_for_child_state`, :func:`wait_until`: wait for what a test
  needs instead of sleeping; on timeout they raise :class:`WaitTimeout`
  naming what was awaited and what was seen.
* :func:`run_tree` / :func:`start_tree`: run a tree for a test and always
  shut it down; the ``running_tree`` and ``procman_recorder`` pytest
  fixtures (:mod:`procman.testing.pytest_plugin`).

A complete test::

    import asyncio

    from procman import ChildState, ProcessManager, runnable
    from procman.events import ProcessFailed, ProcessStarted
    from procman.testing import (
        EventRecorder,
        RunningTreeFactory,
        wait_for_child_state,
        wait_for_event,
    )

    async def test_worker_runs_then_stops(
        running_tree: RunningTreeFactory, procman_recorder: EventRecorder
    ) -> None:
        rec = procman_recorder
        root = ProcessManager("root", observers=[rec])
        root.insert(my_worker("w"))
        tree = await running_tree(root, recorder=rec)

        started = await wait_for_event(rec, ProcessStarted, child="w")
        assert started.restart_count == 0
        await wait_for_child_state(root, "w", ChildState.RUNNING, recorder=rec)

        await tree.shutdown()  # or leave it to the fixture's teardown
        assert rec.of(ProcessFailed) == []
"""

from __future__ import annotations

from procman.testing.recorder import E, EventRecorder, capture_events, describe_event
from procman.testing.tree import (
    RunningTree,
    RunningTreeFactory,
    TreeNotClean,
    run_tree,
    start_tree,
)
from procman.testing.waiting import (
    DEFAULT_TIMEOUT,
    WaitTimeout,
    describe_snapshot,
    find_child,
    wait_for_child_state,
    wait_for_event,
    wait_for_state,
    wait_until,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "E",
    "EventRecorder",
    "RunningTree",
    "RunningTreeFactory",
    "TreeNotClean",
    "WaitTimeout",
    "capture_events",
    "describe_event",
    "describe_snapshot",
    "find_child",
    "run_tree",
    "start_tree",
    "wait_for_child_state",
    "wait_for_event",
    "wait_for_state",
    "wait_until",
]
