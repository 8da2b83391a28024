"""procman.testing: the recorder, the waiting helpers, run_tree and the pytest plugin."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import assert_type

import pytest
from helpers import SwallowsCancel, Worker

from procman import (
    ChildState,
    Control,
    ManagerPhase,
    ManagerStateError,
    ProcessManager,
    Runnable,
    RuntimeContext,
    RuntimeControlMessage,
    runnable,
)
from procman.builtin import IdleProcess
from procman.events import (
    LifecycleEvent,
    ProcessFailed,
    ProcessStarted,
    ProcessStopped,
    ShutdownRequested,
)
from procman.testing import (
    EventRecorder,
    RunningTreeFactory,
    TreeNotClean,
    WaitTimeout,
    capture_events,
    run_tree,
    start_tree,
    wait_for_child_state,
    wait_for_event,
    wait_for_state,
    wait_until,
)

pytest_plugins = ["pytester"]


def started(child: str, restart_count: int = 0) -> ProcessStarted:
    return ProcessStarted(
        supervisor="root", child=child, time=time.monotonic(), restart_count=restart_count
    )


def failed(child: str, exc: BaseException) -> ProcessFailed:
    return ProcessFailed(supervisor="root", child=child, time=time.monotonic(), exception=exc)


# -- the recorder -----------------------------------------------------------------------
async def test_recorder_is_an_observer_that_keeps_every_event_typed() -> None:
    rec = EventRecorder()
    err = ValueError("boom")
    m = ProcessManager("root", observers=[rec])
    m.insert(Worker("bad", fail_after=1, exc=err)).insert(IdleProcess("idle"))
    with pytest.raises(ValueError):
        await asyncio.wait_for(m.process_start(), 5)

    fails = rec.of(ProcessFailed)
    assert_type(fails, list[ProcessFailed])
    assert [(e.child, e.exception) for e in fails] == [("bad", err)]
    assert [e.child for e in rec.of(ProcessStarted)] == ["bad", "idle"]
    assert rec.of(ProcessStarted, child="idle")[0].child == "idle"
    assert rec.names(child="bad") == [
        "procman.child.starting",
        "procman.child.started",
        "procman.child.failed",
    ]
    assert "procman.shutdown.requested" in rec.names()  # manager events have no child
    assert len(rec) == len(rec.events) and list(rec) == rec.events
    # of() takes base classes too
    assert len(rec.of(LifecycleEvent)) == len(rec.events)
    rec.clear()
    assert rec.events == [] and rec.names() == []


async def test_recorder_learns_its_root_and_hints_when_not_attached() -> None:
    rec = EventRecorder()
    with pytest.raises(WaitTimeout, match=r"never saw a tree start \(is it attached\?"):
        await wait_for_event(rec, ProcessStarted, timeout=0.01)
    m = ProcessManager("root", observers=[rec])
    m.insert(Worker("w", exit_after=1))
    await asyncio.wait_for(m.process_start(), 5)
    assert rec.roots == [m]


def test_of_is_typed_for_mypy(tmp_path: Path, root_dir: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from typing import assert_type
            from procman.events import ProcessFailed, ProcessStarted
            from procman.testing import EventRecorder, wait_for_event

            rec = EventRecorder()
            assert_type(rec.of(ProcessFailed), list[ProcessFailed])
            assert_type(rec.of(ProcessFailed)[0].exception, BaseException)

            async def wait() -> None:
                assert_type(await wait_for_event(rec, ProcessStarted), ProcessStarted)

            rec.of(ProcessStarted)[0].exception  # not a field of ProcessStarted
            """
        )
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",  # a cache of its own, kept between runs (git-ignored)
            str(root_dir / ".mypy_cache" / "test_testing"),
            str(snippet),
        ],
        capture_output=True,
        text=True,
        timeout=600,  # a bound for a hang only: cold, mypy takes a few seconds
        cwd=tmp_path,
    )
    # exactly one error: the attribute ProcessStarted does not have
    assert proc.stdout.count("error:") == 1, proc.stdout
    assert '"ProcessStarted" has no attribute "exception"' in proc.stdout, proc.stdout


async def test_capture_events_records_inside_the_block_only() -> None:
    with capture_events() as rec:
        m = ProcessManager("root", observers=[rec])
        m.insert(Worker("w", exit_after=1))
        await asyncio.wait_for(m.process_start(), 5)
        inside = len(rec.events)
    assert inside and rec.closed
    assert [e.child for e in rec.of(ProcessStopped)] == ["w"]
    rec.on_event(started("late"))
    assert len(rec.events) == inside  # closed: no longer records


async def test_capture_events_attaches_to_a_tree_and_restores_its_observers() -> None:
    other = EventRecorder()
    inner = ProcessManager("db", observers=[])
    inner.insert(Worker("conn", exit_after=1))
    root = ProcessManager("root", observers=[other])
    root.insert(inner)
    with capture_events(root) as rec:
        assert root.observers == (other, rec)
        await asyncio.wait_for(root.process_start(), 5)
    assert [e.path for e in rec.of(ProcessStopped)] == ["root/db/conn", "root/db"]
    assert rec.roots == [root] and len(other.events) == len(rec.events)
    assert root.observers == (other,)  # restored

    default = ProcessManager("app")  # the default observers: logging stays
    with capture_events(default) as rec2:
        assert [type(o).__name__ for o in default.observers or ()] == [
            "LoggingObserver",
            "EventRecorder",
        ]
    assert default.observers is None and rec2.closed


async def test_capture_events_refuses_a_running_manager_and_leaves_it_alone() -> None:
    m = ProcessManager("root", observers=[])
    m.insert(IdleProcess())
    async with run_tree(m):
        with pytest.raises(ManagerStateError, match=r"set_observers\(\)"), capture_events(m):
            pass  # pragma: no cover
        assert m.observers == ()


async def test_closing_the_recorder_fails_a_pending_waiter_at_once() -> None:
    with EventRecorder() as rec:
        pending = rec.subscribe(lambda e: True)  # what wait_for_event awaits
    assert pending.done()
    with pytest.raises(RuntimeError, match="closed while a waiter was pending"):
        pending.result()
    with pytest.raises(RuntimeError, match="is closed"):
        await wait_for_event(rec, ProcessStarted, timeout=30)  # fails at once, not in 30 s


# -- wait_for_event ---------------------------------------------------------------------
async def test_wait_for_event_returns_the_matching_event() -> None:
    rec = EventRecorder()
    m = ProcessManager("root", observers=[rec])
    w = Worker("w")
    m.insert(IdleProcess("idle")).insert(w)
    task = asyncio.create_task(m.process_start())
    event = await wait_for_event(rec, ProcessStarted, child="w")
    assert isinstance(event, ProcessStarted) and event.child == "w" and event.path == "root/w"
    # already recorded: returns at once, no race with a fast child
    assert await wait_for_event(rec, ProcessStarted, child="w", timeout=0) is event
    await m.process_handle().shutdown()
    await task


async def test_a_matching_event_resolves_the_waiter_synchronously() -> None:
    rec = EventRecorder()
    future = rec.subscribe(lambda e: isinstance(e, ProcessFailed) and e.child == "b")
    rec.on_event(failed("a", ValueError("a")))
    assert not future.done()
    event = failed("b", KeyError("b"))
    rec.on_event(event)
    # settled inside on_event: wait_for_event, which awaits this future, never polls
    assert future.done() and future.result() is event


async def test_wait_for_event_count_includes_recorded_events() -> None:
    rec = EventRecorder()
    first = started("w")
    rec.on_event(first)
    future = rec.subscribe(lambda e: e.path == "root/w", count=2, recorded=True)
    rec.on_event(started("other"))
    assert not future.done()  # the recorded start counted once, "other" not at all
    second = started("w", restart_count=1)
    rec.on_event(second)
    assert future.result() is second
    assert await wait_for_event(rec, ProcessStarted, child="w", count=2, timeout=0) is second
    assert await wait_for_event(rec, ProcessStarted, child="w", timeout=0) is first


async def test_waiters_are_woken_from_an_observer_thread() -> None:
    rec = EventRecorder()
    event = started("w")
    future = rec.subscribe(lambda e: True)
    thread = threading.Thread(target=rec.on_event, args=(event,))
    thread.start()
    assert await asyncio.wait_for(future, 5) is event  # via call_soon_threadsafe
    thread.join()


async def test_wait_for_event_timeout_names_what_was_awaited_and_what_was_seen() -> None:
    rec = EventRecorder()
    rec.on_event(started("a"))
    rec.on_event(failed("a", ValueError("disk gone")))
    with pytest.raises(WaitTimeout) as info:
        await wait_for_event(rec, ProcessStopped, child="a", timeout=0.05)
    message = str(info.value)
    assert isinstance(info.value, AssertionError)
    assert "timed out after 0.05s waiting for ProcessStopped (procman.child.stopped)" in message
    assert "of child 'a'" in message
    assert "2 events recorded" in message
    assert "procman.child.started root/a" in message
    assert "procman.child.failed root/a (ValueError: disk gone)" in message
    assert info.value.what.startswith("ProcessStopped") and info.value.timeout == 0.05


async def test_wait_for_event_timeout_describes_count_and_condition() -> None:
    rec = EventRecorder()
    with pytest.raises(WaitTimeout) as info:
        await wait_for_event(
            rec, ProcessStarted, where=lambda e: e.restart_count > 0, count=2, timeout=0.01
        )
    message = str(info.value)
    assert "the 2nd ProcessStarted" in message
    assert "lambda e: e.restart_count > 0" in message
    assert "no events recorded" in message


async def test_a_waiter_condition_that_raises_fails_that_waiter() -> None:
    rec = EventRecorder()
    other = rec.subscribe(lambda e: e.path == "root/w")
    broken = rec.subscribe(lambda e: 1 / 0 > 0)
    event = started("w")
    rec.on_event(event)  # must not raise into the manager's fan-out
    with pytest.raises(ZeroDivisionError):
        broken.result()
    assert other.result() is event and rec.events == [event]


# -- tree states ------------------------------------------------------------------------
async def test_wait_for_state_and_child_state() -> None:
    rec = EventRecorder()
    inner = ProcessManager("db")
    inner.insert(IdleProcess("conn"))
    m = ProcessManager("root", observers=[rec])
    m.insert(inner).insert(Worker("short", exit_after=2)).insert(IdleProcess("idle"))
    task = asyncio.create_task(m.process_start())
    conn = await wait_for_child_state(m, "db/conn", ChildState.RUNNING, recorder=rec)
    assert conn.name == "conn" and conn.state is ChildState.RUNNING
    snap = await wait_for_state(m, lambda s: len(s.children) == 2, recorder=rec)
    assert {c.name for c in snap.children} == {"db", "idle"}  # auto_cleanup dropped "short"
    await m.process_handle().shutdown()
    await task


async def test_wait_for_child_state_without_observers_or_recorder() -> None:
    m = ProcessManager("root", observers=[], auto_cleanup=False)
    m.insert(Worker("short", exit_after=1, period=0)).insert(IdleProcess("idle"))
    task = asyncio.create_task(m.process_start())
    done = await wait_for_child_state(m, "short", {ChildState.STOPPED, ChildState.FAILED})
    assert done.state is ChildState.STOPPED
    await m.process_handle().shutdown()
    await task


async def test_wait_for_state_timeout_shows_the_snapshot_and_events() -> None:
    rec = EventRecorder()
    m = ProcessManager("root", observers=[rec])
    m.insert(IdleProcess("idle"))
    task = asyncio.create_task(m.process_start())
    with pytest.raises(WaitTimeout) as info:
        await wait_for_state(
            m, lambda s: s.phase is ManagerPhase.STOPPED, recorder=rec, timeout=0.05
        )
    message = str(info.value)
    assert "waiting for" in message and "s.phase is ManagerPhase.STOPPED" in message
    assert "root [running]: idle=running" in message
    assert "procman.child.started root/idle" in message
    with pytest.raises(WaitTimeout, match=r"(?s)child 'idle' to be stopped.*idle=running"):
        await wait_for_child_state(m, "idle", ChildState.STOPPED, timeout=0.05)
    with pytest.raises(WaitTimeout, match="waiting for the tree to settle"):
        await wait_for_state(m, lambda s: False, timeout=0.01, what="the tree to settle")
    await m.process_handle().shutdown()
    await task


async def test_wait_until_rechecks_on_events_and_names_the_condition() -> None:
    rec = EventRecorder()
    seen: list[str] = []
    waiter = asyncio.ensure_future(wait_until(lambda: "go" in seen, recorder=rec, timeout=5))
    await asyncio.sleep(0)  # one step: the waiter checked once and now waits for an event
    seen.append("go")
    rec.on_event(started("w"))
    await asyncio.wait_for(waiter, 5)
    with pytest.raises(WaitTimeout) as info:
        await wait_until(lambda: "never" in seen, timeout=0.02)
    assert 'lambda: "never" in seen' in str(info.value)
    assert "the predicate stayed false" in str(info.value)


# -- run_tree ---------------------------------------------------------------------------
async def test_run_tree_shuts_down_a_tree_the_block_left_running() -> None:
    w = Worker("w")
    m = ProcessManager("root", observers=[])
    m.insert(w)
    async with run_tree(m) as tree:
        await w.started.wait()
        assert not tree.done
    assert tree.done and m.phase is ManagerPhase.STOPPED
    assert w.stopped_gracefully


async def test_run_tree_reports_a_hung_tree() -> None:
    m = ProcessManager("root", observers=[], shutdown_grace_period=30)
    m.insert(Worker("stuck", ignore_shutdown=True))
    with pytest.raises(TreeNotClean, match=r"tree 'root' hung: not shut down within 0.1s"):
        async with run_tree(m, shutdown_timeout=0.1):
            pass
    assert m.phase is ManagerPhase.STOPPED  # it was cancelled, nothing left running


async def test_run_tree_reports_an_error_nobody_checked() -> None:
    m = ProcessManager("root", observers=[])
    m.insert(Worker("bad", fail_after=1, exc=KeyError("lost")))
    with pytest.raises(TreeNotClean, match=r"ended with an error the test did not check: KeyE"):
        async with run_tree(m) as tree:
            await asyncio.wait((tree.task,), timeout=5)
    m2 = ProcessManager("root", observers=[])
    m2.insert(Worker("bad", fail_after=1, exc=KeyError("seen")))
    async with run_tree(m2) as tree2:
        with pytest.raises(KeyError):
            await tree2.wait()


async def test_run_tree_reports_abandoned_children() -> None:
    release = asyncio.Event()
    stubborn = SwallowsCancel(release)
    rec = EventRecorder()
    m = ProcessManager("root", shutdown_grace_period=0.01, cancel_timeout=0.01, observers=[rec])
    m.insert(stubborn)
    try:
        with pytest.raises(TreeNotClean, match=r"abandoned .*root/Stubborn"):
            async with run_tree(m, recorder=rec):
                await wait_for_event(rec, ProcessStarted)
    finally:
        release.set()
        await asyncio.wait_for(stubborn.ended.wait(), 5)


async def test_run_tree_lets_the_block_exception_win() -> None:
    m = ProcessManager("root", observers=[])
    m.insert(IdleProcess())
    with pytest.raises(ZeroDivisionError):
        async with run_tree(m):
            1 / 0  # noqa: B018
    assert m.phase is ManagerPhase.STOPPED


async def test_start_tree_refuses_a_running_manager() -> None:
    m = ProcessManager("root", observers=[])
    m.insert(IdleProcess())
    async with run_tree(m):
        with pytest.raises(ManagerStateError, match="already running"):
            await start_tree(m)
    assert m.phase is ManagerPhase.STOPPED


def ready_after(gate: asyncio.Event) -> Runnable:
    async def db(ctx: RuntimeContext) -> None:
        await gate.wait()
        ctx.ready()
        while True:
            match await ctx.tick(asyncio.sleep(3600)):
                case Control(RuntimeControlMessage.SHUTDOWN):
                    return
                case _:
                    pass

    return runnable(db)


async def test_start_tree_can_wait_for_readiness() -> None:
    rec = EventRecorder()
    gate = asyncio.Event()
    m = ProcessManager("root", observers=[rec])
    m.insert(ready_after(gate), wait_ready=True)
    starting = asyncio.ensure_future(start_tree(m, ready=True))
    await wait_for_event(rec, ProcessStarted, child="db")
    assert not starting.done()
    gate.set()
    tree = await asyncio.wait_for(starting, 5)
    assert tree.snapshot().ready
    assert await tree.close() == []


async def test_start_tree_ready_timeout_names_the_unready_child() -> None:
    m = ProcessManager("root", observers=[])
    m.insert(ready_after(asyncio.Event()), wait_ready=True)
    with pytest.raises(WaitTimeout, match=r"(?s)manager 'root' to be ready.*db=starting"):
        await start_tree(m, ready=True, start_timeout=0.05)
    assert m.phase is ManagerPhase.STOPPED  # the tree was cancelled, not left running


async def test_tree_shutdown_returns_and_reraises() -> None:
    m = ProcessManager("root", observers=[])
    m.insert(IdleProcess())
    async with run_tree(m) as tree:
        await tree.shutdown()
        assert tree.done
    rec = EventRecorder()
    bad = ProcessManager("root", observers=[rec])
    bad.insert(Worker("w", fail_after=1, exc=OSError("x"))).insert(IdleProcess())
    async with run_tree(bad) as tree:
        await wait_for_event(rec, ShutdownRequested)
        with pytest.raises(OSError):
            await tree.shutdown()


# -- the pytest plugin ------------------------------------------------------------------
def test_plugin_is_registered_by_entry_point(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("procman")


async def test_running_tree_fixture(
    running_tree: RunningTreeFactory, procman_recorder: EventRecorder
) -> None:
    m = ProcessManager("root", observers=[procman_recorder])
    m.insert(Worker("w"))
    tree = await running_tree(m, recorder=procman_recorder)
    assert tree.recorder is procman_recorder
    await wait_for_event(procman_recorder, ProcessStarted, child="w")
    # left running: the fixture shuts it down


_INNER_TESTS = """
import asyncio
from procman import ProcessManager, ManagerPhase
from procman.builtin import IdleProcess
from procman.testing import RunningTreeFactory

TREES = []

async def test_leaves_tree_running(running_tree: RunningTreeFactory) -> None:
    m = ProcessManager("left", observers=[])
    m.insert(IdleProcess())
    tree = await running_tree(m)
    TREES.append(tree)

def test_it_was_shut_down() -> None:
    (tree,) = TREES
    assert tree.done and tree.manager.phase is ManagerPhase.STOPPED
    assert tree.task.result() is None

async def test_hung_tree_fails_at_teardown(running_tree: RunningTreeFactory) -> None:
    from helpers_inner import Stuck
    m = ProcessManager("hung", observers=[], shutdown_grace_period=30)
    m.insert(Stuck())
    await running_tree(m, shutdown_timeout=0.1)
"""

_INNER_HELPERS = """
import asyncio
from procman import ProcessControlHandler, Runnable

class _Ignore(ProcessControlHandler):
    async def shutdown(self) -> None:
        pass
    async def reload(self) -> None:
        pass

class Stuck(Runnable):
    def process_handle(self) -> ProcessControlHandler:
        return _Ignore()
    async def process_start(self) -> None:
        await asyncio.Event().wait()
"""


def test_running_tree_fixture_cleans_up_and_fails_hung_trees(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        asyncio_mode = auto
        asyncio_default_fixture_loop_scope = function
        """
    )
    pytester.makepyfile(test_inner=_INNER_TESTS, helpers_inner=_INNER_HELPERS)
    pytester.syspathinsert()
    result = pytester.runpytest("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*procman running_tree teardown:*", "*tree 'hung' hung*"])


def test_running_tree_fixture_works_in_strict_mode(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(
        """
        import pytest
        from procman import ProcessManager
        from procman.builtin import IdleProcess

        @pytest.mark.asyncio
        async def test_strict(running_tree) -> None:
            m = ProcessManager("root", observers=[])
            m.insert(IdleProcess())
            tree = await running_tree(m)
            assert not tree.done
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)


def test_readme_example_passes(pytester: pytest.Pytester, root_dir: Path) -> None:
    readme = (root_dir / "README.md").read_text()
    section = readme.split("## Testing your processes", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(test_readme_example=code)
    result = pytester.runpytest("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)
