"""pytest plugin of procman (entry point ``pytest11``: loaded wherever procman is installed).

Fixtures:

``procman_recorder``
    A fresh :class:`~procman.testing.EventRecorder`, closed at teardown (a
    waiter still pending then fails at once).

``running_tree``
    A factory: ``tree = await running_tree(manager, recorder=rec)`` starts
    the manager as a task, returns once it started its children (with
    ``ready=True``: once the whole tree is ready) and, at
    teardown, always shuts every started tree down (through its handle,
    bounded by ``shutdown_timeout``) and awaits its task. The test fails when
    a tree hung, leaked a task, abandoned a child or ended with an error the
    test never checked (see :mod:`procman.testing.tree`). Needs
    pytest-asyncio; it is declared with ``pytest_asyncio.fixture``, so it
    works in both the ``auto`` and the ``strict`` mode.

Example (pytest-asyncio in ``auto`` mode)::

    from procman import ProcessManager
    from procman.events import ProcessStarted
    from procman.testing import EventRecorder, RunningTreeFactory, wait_for_event

    async def test_worker_starts(
        running_tree: RunningTreeFactory, procman_recorder: EventRecorder
    ) -> None:
        root = ProcessManager("root", observers=[procman_recorder])
        root.insert(MyWorker("w"))
        tree = await running_tree(root, recorder=procman_recorder)
        await wait_for_event(procman_recorder, ProcessStarted, child="w")
        # no shutdown needed: the fixture does it and checks it was clean
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from procman import ProcessManager
from procman.testing.recorder import EventRecorder
from procman.testing.tree import RunningTree, RunningTreeFactory, start_tree
from procman.testing.waiting import DEFAULT_TIMEOUT

__all__ = ["procman_recorder", "running_tree"]


@pytest.fixture
def procman_recorder() -> Iterator[EventRecorder]:
    """A fresh EventRecorder, closed at teardown."""
    with EventRecorder() as rec:
        yield rec


async def _running_tree() -> AsyncIterator[RunningTreeFactory]:
    """``tree = await running_tree(manager)``: every started tree is shut down and checked."""
    trees: list[RunningTree] = []

    async def start(
        manager: ProcessManager,
        *,
        recorder: EventRecorder | None = None,
        ready: bool = False,
        start_timeout: float = DEFAULT_TIMEOUT,
        shutdown_timeout: float = DEFAULT_TIMEOUT,
    ) -> RunningTree:
        tree = await start_tree(
            manager,
            recorder=recorder,
            ready=ready,
            start_timeout=start_timeout,
            shutdown_timeout=shutdown_timeout,
        )
        trees.append(tree)
        return tree

    yield start
    problems: list[str] = []
    for tree in reversed(trees):
        problems.extend(await tree.close())
    if problems:
        pytest.fail("procman running_tree teardown:\n" + "\n".join(problems), pytrace=False)


def _async_fixture(fn: Callable[..., Any], name: str) -> Any:
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover - pytest-asyncio is in procman's test extra

        def missing() -> None:
            pytest.fail(f"the {name} fixture needs pytest-asyncio (pip install pytest-asyncio)")

        return pytest.fixture(missing, name=name)
    return pytest_asyncio.fixture(fn, name=name)


running_tree = _async_fixture(_running_tree, "running_tree")
"""Factory fixture: ``tree = await running_tree(manager)``; always shut down at teardown."""
