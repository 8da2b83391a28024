"""Supervision policies: restart types, strategies, intensity, readiness, order, significance."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from typing import Any, TypedDict, Unpack

import pytest

from procman import (
    ChildState,
    Control,
    ManagerStateError,
    Observer,
    ProcessManager,
    ProcessManagerBuilder,
    ReadyTimeoutError,
    Restart,
    RestartBackoff,
    RestartIntensityExceeded,
    Runnable,
    RuntimeContext,
    RuntimeControlMessage,
    Strategy,
    TerminationSignal,
    runnable,
)
from procman.events import (
    ProcessCancelled,
    ProcessFailed,
    ProcessReady,
    ProcessRestarted,
    RestartCompleted,
    RestartRequested,
    RestartScheduled,
)
from procman.manager import DEFAULT_GRACE_PERIOD
from procman.policy import DEFAULT_READY_TIMEOUT
from procman.testing import (
    EventRecorder,
    RunningTree,
    run_tree,
    wait_for_child_state,
    wait_for_state,
)

NO_DELAY = RestartBackoff(initial=0, max=0)
NEVER = RestartBackoff(initial=3600, max=3600)
"""A restart delay no test outlives: the child stays in backoff."""


class Script:
    """Records what children do, and lets a test wait for it."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self._cond = asyncio.Condition()

    async def note(self, entry: str) -> None:
        async with self._cond:
            self.log.append(entry)
            self._cond.notify_all()

    async def wait(self, pred: Callable[[list[str]], bool], timeout: float = 10) -> None:
        async def _wait() -> None:
            async with self._cond:
                await self._cond.wait_for(lambda: pred(self.log))

        try:
            await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"condition not met; log: {self.log}") from None

    def count(self, entry: str) -> int:
        return self.log.count(entry)

    def of(self, kind: str, *, after: str | None = None) -> list[str]:
        """The entries of one kind in order (``of("stop")``), optionally only those after
        the first ``after`` entry."""
        log = self.log if after is None else self.log[self.log.index(after) + 1 :]
        return [e for e in log if e.startswith(f"{kind}:")]


def kid(
    script: Script,
    name: str,
    *,
    fail_runs: int = 0,
    return_runs: int = 0,
    ready: bool = False,
    ready_gate: asyncio.Event | None = None,
    stop_delay: float = 0.0,
) -> Runnable:
    """A child: fails its first ``fail_runs`` runs, returns its next ``return_runs`` runs."""
    runs = 0

    async def body(ctx: RuntimeContext) -> None:
        nonlocal runs
        runs += 1
        run = runs
        await script.note(f"start:{name}")
        if ready_gate is not None:
            await ready_gate.wait()
        if ready:
            ctx.ready()
            await script.note(f"ready:{name}")
        if run <= fail_runs:
            await script.note(f"fail:{name}")
            raise RuntimeError(f"{name} run {run} failed")
        if run <= fail_runs + return_runs:
            await script.note(f"return:{name}")
            return
        while True:
            op = await ctx.tick(asyncio.sleep(3600))
            if isinstance(op, Control) and op.message is RuntimeControlMessage.SHUTDOWN:
                if stop_delay:
                    await asyncio.sleep(stop_delay)
                await script.note(f"stop:{name}")
                return

    return runnable(body, name=name)


def siblings(script: Script, names: str, *, failing: str) -> list[Runnable]:
    """One child per letter of ``names``: ``failing`` fails its first run, the rest run on."""
    return [kid(script, n, fail_runs=1 if n == failing else 0) for n in names]


class ChildOptions(TypedDict, total=False):
    """The options of ``ProcessManager.insert`` (left out: procman's default)."""

    restart: Restart
    wait_ready: bool
    ready_timeout: float
    shutdown_timeout: float
    significant: bool


Child = Runnable | tuple[Runnable, ChildOptions]


def opts(child: Runnable, **options: Unpack[ChildOptions]) -> Child:
    """A child to insert with options: ``opts(kid(s, "p"), restart=Restart.PERMANENT)``."""
    return child, options


def gated(
    script: Script,
    name: str,
    gate: asyncio.Event,
    *,
    fail_runs: int = 0,
    ready_timeout: float = DEFAULT_READY_TIMEOUT,
) -> Child:
    """A ``wait_ready`` child that calls ``ready()`` once ``gate`` is set (each run)."""
    child = kid(script, name, ready=True, ready_gate=gate, fail_runs=fail_runs)
    return opts(child, wait_ready=True, ready_timeout=ready_timeout)


def manager(
    *children: Child,
    name: str = "app",
    observers: Sequence[Observer] | None = (),
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    restarts: int = 0,
    backoff: RestartBackoff | None = None,
    ordered: bool = False,
    grace: float = DEFAULT_GRACE_PERIOD,
) -> ProcessManager:
    """A manager with ``children`` inserted in order.

    ``observers``: none by default; ``None`` inherits the parent's (a nested manager).
    ``restarts``: the intensity, that many restarts within 60 s; they come at once
    unless ``backoff`` says otherwise. Without ``restarts`` the policy is procman's
    default (no restart allowed).
    ``grace``: the shutdown grace period.
    """
    if backoff is None and restarts:
        backoff = NO_DELAY
    m = ProcessManager(
        name,
        observers=observers,
        strategy=strategy,
        max_restarts=restarts,
        within=60,
        backoff=backoff,
        ordered=ordered,
        shutdown_grace_period=grace,
    )
    for child in children:
        r, options = child if isinstance(child, tuple) else (child, ChildOptions())
        m.insert(r, **options)
    return m


async def run_until(m: ProcessManager, s: Script, pred: Callable[[list[str]], bool]) -> None:
    """Run ``m`` until the children's log satisfies ``pred``, then shut it down (``run_tree``
    checks that it ends cleanly)."""
    async with run_tree(m):
        await s.wait(pred)


async def run_to_end(m: ProcessManager, timeout: float = 10) -> None:
    """Run ``m`` until it returns (or raises) by itself."""
    await asyncio.wait_for(m.process_start(), timeout)


async def shutdown_seconds(tree: RunningTree) -> float:
    """Shut ``tree`` down (within 5 s) and return how long it took."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await tree.shutdown(5)
    return loop.time() - t0


# -- restart types ------------------------------------------------------------------
async def test_one_for_one_restarts_only_the_failed_child() -> None:
    s, rec = Script(), EventRecorder()
    m = manager(*siblings(s, "abc", failing="b"), restarts=5, observers=[rec])

    async with run_tree(m, recorder=rec):
        await s.wait(lambda log: log.count("start:b") == 2)
        assert s.count("start:a") == 1 and s.count("start:c") == 1
        assert "stop:a" not in s.log and "stop:c" not in s.log
        [req] = rec.of(RestartRequested)
        assert (req.strategy, req.trigger, req.children) == ("one_for_one", "b", ("b",))
        [sched] = rec.of(RestartScheduled)
        assert (sched.child, sched.attempt, sched.strategy) == ("b", 1, "one_for_one")
        assert [e.child for e in rec.of(ProcessRestarted)] == ["b"]
        snap = m.snapshot()
        assert {c.name: c.restart_count for c in snap.children} == {"a": 0, "b": 1, "c": 0}
    assert rec.of(RestartCompleted)[0].trigger == "b"


async def test_one_for_all_stops_others_in_reverse_and_restarts_all_in_start_order() -> None:
    s = Script()
    m = manager(*siblings(s, "abcd", failing="b"), strategy=Strategy.ONE_FOR_ALL, restarts=3)

    async with run_tree(m):
        await s.wait(lambda log: log.count("start:d") == 2 and log.count("start:a") == 2)
        assert s.of("stop", after="fail:b") == ["stop:d", "stop:c", "stop:a"]
        assert s.of("start")[4:] == ["start:a", "start:b", "start:c", "start:d"]
        restarts = {c.name: c.restart_count for c in m.snapshot().children}
        assert restarts == {"a": 1, "b": 1, "c": 1, "d": 1}


async def test_rest_for_one_restarts_the_child_and_those_started_after_it() -> None:
    s, rec = Script(), EventRecorder()
    m = manager(
        *siblings(s, "abcd", failing="b"),
        strategy=Strategy.REST_FOR_ONE,
        restarts=3,
        observers=[rec],
    )

    async with run_tree(m, recorder=rec):
        await s.wait(lambda log: log.count("start:d") == 2)
        assert s.count("start:a") == 1 and "stop:a" not in s.log
        assert s.of("stop", after="fail:b") == ["stop:d", "stop:c"]
        assert s.of("start")[4:] == ["start:b", "start:c", "start:d"]
        [req] = rec.of(RestartRequested)
        assert req.strategy == "rest_for_one" and req.children == ("b", "c", "d")
        assert sorted(e.child for e in rec.of(ProcessRestarted)) == ["b", "c", "d"]


async def test_permanent_child_is_restarted_after_a_clean_return() -> None:
    s = Script()
    m = manager(opts(kid(s, "p", return_runs=2), restart=Restart.PERMANENT), restarts=5)
    await run_until(m, s, lambda log: log.count("start:p") == 3)


async def test_transient_child_is_not_restarted_after_a_clean_return() -> None:
    s = Script()
    await run_to_end(manager(kid(s, "t", return_runs=1), restarts=5))  # nothing left: it returns
    assert s.count("start:t") == 1


async def test_temporary_child_failure_does_not_stop_its_siblings() -> None:
    s, rec = Script(), EventRecorder()
    m = manager(
        opts(kid(s, "tmp", fail_runs=1), restart=Restart.TEMPORARY),
        kid(s, "steady"),
        observers=[rec],
    )

    async with run_tree(m, recorder=rec):
        await s.wait(lambda log: "fail:tmp" in log)
        # the manager has handled its end: a temporary child is dropped, not restarted
        await wait_for_state(
            m, lambda snap: "tmp" not in {c.name for c in snap.children}, recorder=rec
        )
        assert m.snapshot().phase.value == "running"
        assert "stop:steady" not in s.log
        assert not rec.of(RestartRequested)
    assert s.count("start:tmp") == 1


async def test_unrequested_cancellation_restarts_only_permanent_children() -> None:
    s = Script()
    m = manager(opts(kid(s, "perm"), restart=Restart.PERMANENT), kid(s, "trans"), restarts=5)

    async with run_tree(m):
        await s.wait(lambda log: "start:perm" in log and "start:trans" in log)
        tasks = {r.name: r.task for r in m._live.values()}
        for task in tasks.values():
            assert task is not None
            task.cancel()
        await s.wait(lambda log: log.count("start:perm") == 2)
        assert s.count("start:trans") == 1


# -- intensity ----------------------------------------------------------------------
async def test_intensity_exceeded_shuts_down_and_raises_with_the_last_failure_as_cause() -> None:
    s = Script()
    m = manager(kid(s, "crash", fail_runs=100), kid(s, "steady"), restarts=2)
    with pytest.raises(RestartIntensityExceeded) as info:
        await run_to_end(m)
    assert s.count("start:crash") == 3  # the first run and 2 restarts
    assert "stop:steady" in s.log
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "run 3 failed" in str(info.value.__cause__)
    assert info.value.max_restarts == 2 and info.value.child == "crash"


async def test_permanent_clean_return_with_no_restart_allowed_raises_intensity_without_cause() -> (
    None
):
    s = Script()
    m = manager(opts(kid(s, "p", return_runs=1), restart=Restart.PERMANENT))
    with pytest.raises(RestartIntensityExceeded) as info:
        await run_to_end(m)
    assert info.value.__cause__ is None


async def test_default_policy_raises_the_first_failure_itself() -> None:
    s = Script()
    m = manager(kid(s, "bad", fail_runs=1), kid(s, "good"))
    with pytest.raises(RuntimeError, match="bad run 1 failed"):
        await run_to_end(m)
    assert "stop:good" in s.log


async def test_a_group_restart_counts_once_towards_the_intensity() -> None:
    s = Script()
    m = manager(*siblings(s, "abc", failing="b"), strategy=Strategy.ONE_FOR_ALL, restarts=1)
    # three children restart once together: one restart, within the intensity of 1
    await run_until(m, s, lambda log: log.count("start:c") == 2)


async def test_backoff_delays_the_restart() -> None:
    s, rec = Script(), EventRecorder()
    backoff = RestartBackoff(initial=0.2, max=1)
    m = manager(kid(s, "b", fail_runs=1), restarts=3, backoff=backoff, observers=[rec])
    loop = asyncio.get_running_loop()

    async with run_tree(m, recorder=rec):
        await s.wait(lambda log: "fail:b" in log)
        t0 = loop.time()
        await s.wait(lambda log: log.count("start:b") == 2)
        assert loop.time() - t0 >= 0.15
        [sched] = rec.of(RestartScheduled)
        assert sched.delay == pytest.approx(0.2)


async def test_shutdown_during_backoff_ends_at_once() -> None:
    s = Script()
    m = manager(kid(s, "b", fail_runs=1), restarts=3, backoff=NEVER)

    async with run_tree(m) as tree:
        await wait_for_child_state(m, "b", ChildState.BACKOFF)
        snap = m.snapshot()
        assert [c.state for c in snap.children] == [ChildState.BACKOFF]
        assert not snap.ready
        await tree.shutdown(5)
    assert s.count("start:b") == 1


# -- readiness ----------------------------------------------------------------------
async def test_wait_ready_child_is_starting_until_it_signals() -> None:
    s, rec = Script(), EventRecorder()
    gate = asyncio.Event()
    m = manager(gated(s, "db", gate), kid(s, "plain"), observers=[rec])

    async with run_tree(m, recorder=rec):
        await s.wait(lambda log: "start:db" in log and "start:plain" in log)
        snap = m.snapshot()
        states = {c.name: (c.state, c.ready) for c in snap.children}
        assert states["db"] == (ChildState.STARTING, False)
        assert states["plain"] == (ChildState.RUNNING, True)
        assert not snap.ready and not m.is_ready()
        waiter = asyncio.ensure_future(m.wait_ready())
        await asyncio.sleep(0)  # one loop step: the waiter must still be pending
        assert not waiter.done()
        gate.set()
        await asyncio.wait_for(waiter, 5)
        snap = m.snapshot()
        assert snap.ready and {c.name: c.state for c in snap.children}["db"] is ChildState.RUNNING
        [ready] = rec.of(ProcessReady)
        assert ready.child == "db" and ready.duration >= 0


async def test_ready_is_a_no_op_without_wait_ready_and_outside_a_manager() -> None:
    s = Script()
    child = kid(s, "solo", ready=True, return_runs=1)
    await asyncio.wait_for(child.process_start(), 5)  # standalone: ready() does nothing
    await run_to_end(manager(kid(s, "k", ready=True, return_runs=1)), timeout=5)
    assert s.count("ready:k") == 1


async def test_ready_timeout_fails_the_child_with_ready_timeout_error() -> None:
    s = Script()
    never = asyncio.Event()
    m = manager(gated(s, "slow", never, ready_timeout=0.1), kid(s, "other"))
    with pytest.raises(ReadyTimeoutError) as info:
        await run_to_end(m)
    assert isinstance(info.value, TimeoutError)
    assert "'slow'" in str(info.value)
    assert "stop:other" in s.log


async def test_ready_timeout_with_observers_emits_a_failure() -> None:
    s, rec = Script(), EventRecorder()
    never = asyncio.Event()
    m = manager(gated(s, "slow", never, ready_timeout=0.1), observers=[rec])
    with pytest.raises(ReadyTimeoutError):
        await run_to_end(m)
    [failed] = rec.of(ProcessFailed)
    assert isinstance(failed.exception, ReadyTimeoutError)
    assert not rec.of(ProcessCancelled)


async def test_a_restarted_child_is_starting_again_until_it_signals_again() -> None:
    s, rec = Script(), EventRecorder()
    gate = asyncio.Event()
    gate.set()
    m = manager(gated(s, "db", gate), restarts=3, observers=[rec])

    async with run_tree(m, recorder=rec, ready=True) as tree:
        gate.clear()
        [r] = list(m._live.values())
        assert r.task is not None
        r.task.cancel()  # unrequested cancellation: TRANSIENT, not restarted
        await tree.wait(5)  # the only child ended: the manager returns


async def test_failed_ready_child_restarts_and_must_signal_again() -> None:
    s, rec = Script(), EventRecorder()
    gate = asyncio.Event()
    m = manager(gated(s, "db", gate, fail_runs=1), restarts=3, observers=[rec])

    async with run_tree(m, recorder=rec):
        gate.set()
        await s.wait(lambda log: log.count("start:db") == 2)
        await m.wait_ready()
        assert len(rec.of(ProcessReady)) == 2
        assert [e.restart_count for e in rec.of(ProcessReady)] == [0, 1]


async def test_nested_manager_is_ready_when_its_children_are() -> None:
    s, rec = Script(), EventRecorder()
    gate = asyncio.Event()
    inner = manager(gated(s, "conn", gate), name="inner", observers=None)
    root = manager(inner, kid(s, "web"), name="root", observers=[rec])

    async with run_tree(root, recorder=rec):
        await s.wait(lambda log: "start:conn" in log)
        snap = root.snapshot()
        assert not snap.ready
        nested = {c.name: c for c in snap.children}["inner"]
        assert nested.ready is False
        gate.set()
        await asyncio.wait_for(root.wait_ready(), 5)
        assert root.snapshot().ready
        assert {e.path for e in rec.of(ProcessReady)} == {"root/inner/conn", "root/inner"}


# -- ordered start and stop ---------------------------------------------------------------
async def test_ordered_start_waits_for_each_child_to_be_ready() -> None:
    s = Script()
    gates = [asyncio.Event() for _ in range(3)]
    m = manager(
        *(gated(s, f"c{i}", gate) for i, gate in enumerate(gates)), kid(s, "plain"), ordered=True
    )

    async with run_tree(m):  # returns once started (m.wait_started())
        await s.wait(lambda log: "start:c0" in log)
        assert "start:c1" not in s.log
        snap = m.snapshot()
        assert [c.name for c in snap.children] == ["c0", "c1", "c2", "plain"]
        assert [c.state for c in snap.children] == [ChildState.STARTING] * 4
        gates[0].set()
        await s.wait(lambda log: "start:c1" in log)
        assert "start:c2" not in s.log
        gates[1].set()
        gates[2].set()
        await asyncio.wait_for(m.wait_ready(), 5)
        assert s.of("start") == ["start:c0", "start:c1", "start:c2", "start:plain"]
    assert s.of("stop") == ["stop:plain", "stop:c2", "stop:c1", "stop:c0"]


async def test_ordered_shutdown_waits_for_each_child_before_asking_the_previous() -> None:
    s = Script()
    m = manager(kid(s, "first"), kid(s, "slow", stop_delay=0.2), kid(s, "last"), ordered=True)
    await run_until(m, s, lambda log: log.count("start:last") == 1)
    assert s.of("stop") == ["stop:last", "stop:slow", "stop:first"]


async def test_failure_during_ordered_start_stops_started_children_in_reverse() -> None:
    s = Script()
    gate = asyncio.Event()
    m = manager(
        kid(s, "a"),
        kid(s, "b"),
        opts(kid(s, "c", fail_runs=1, ready_gate=gate), wait_ready=True),
        kid(s, "never"),
        ordered=True,
    )

    async with run_tree(m) as tree:
        await s.wait(lambda log: "start:c" in log)
        gate.set()
        with pytest.raises(RuntimeError, match="c run 1 failed"):
            await tree.wait(10)
    assert "start:never" not in s.log
    assert s.of("stop") == ["stop:b", "stop:a"]


async def test_ordered_shutdown_force_cancels_a_child_after_its_own_timeout() -> None:
    s = Script()
    stuck = opts(kid(s, "stuck", stop_delay=3600), shutdown_timeout=0.1)
    m = manager(kid(s, "a"), stuck, ordered=True, grace=10)

    async with run_tree(m) as tree:
        await s.wait(lambda log: "start:stuck" in log)
        assert await shutdown_seconds(tree) < 3
    assert s.log[-1] == "stop:a" and "stop:stuck" not in s.log


async def test_add_during_an_ordered_start_joins_the_end() -> None:
    s = Script()
    gate = asyncio.Event()
    m = manager(gated(s, "a", gate), kid(s, "b"), ordered=True)

    async with run_tree(m):  # returns once started (m.wait_started()): add() works
        m.add(kid(s, "late"))
        await s.wait(lambda log: "start:a" in log)
        assert "start:late" not in s.log
        gate.set()
        await s.wait(lambda log: "start:late" in log)
        assert s.of("start") == ["start:a", "start:b", "start:late"]


async def test_children_waiting_in_an_ordered_start_never_start_after_a_shutdown() -> None:
    s = Script()
    never = asyncio.Event()
    m = manager(gated(s, "a", never), kid(s, "b"), ordered=True, grace=0.1)

    async with run_tree(m) as tree:
        await s.wait(lambda log: "start:a" in log)
        await tree.shutdown(5)
    assert "start:b" not in s.log


# -- shutdown timeouts and significant children ---------------------------------------------
async def test_per_child_shutdown_timeout_cancels_that_child_first() -> None:
    s = Script()
    m = manager(
        opts(kid(s, "quick_to_cancel", stop_delay=3600), shutdown_timeout=0.05),
        kid(s, "polite", stop_delay=0.3),
        grace=10,
    )

    async with run_tree(m) as tree:
        await s.wait(lambda log: "start:polite" in log and "start:quick_to_cancel" in log)
        assert await shutdown_seconds(tree) < 5
    assert "stop:polite" in s.log and "stop:quick_to_cancel" not in s.log


async def test_shutdown_timeout_never_extends_the_managers_grace_period() -> None:
    s = Script()
    m = manager(opts(kid(s, "stuck", stop_delay=3600), shutdown_timeout=3600), grace=0.1)

    async with run_tree(m) as tree:
        await s.wait(lambda log: "start:stuck" in log)
        assert await shutdown_seconds(tree) < 3


async def test_significant_child_returning_ends_the_tree() -> None:
    s = Script()
    job = opts(kid(s, "job", return_runs=1), significant=True)
    await run_to_end(manager(job, kid(s, "sidecar")))
    assert "stop:sidecar" in s.log


async def test_significant_child_failing_follows_its_restart_type() -> None:
    s = Script()
    job = opts(kid(s, "job", fail_runs=1, return_runs=1), significant=True)
    await run_to_end(manager(job, kid(s, "sidecar"), restarts=3))
    assert s.count("start:job") == 2 and "stop:sidecar" in s.log


async def test_significant_in_a_nested_manager_ends_that_manager_only() -> None:
    s = Script()
    job = opts(kid(s, "job", return_runs=1), significant=True)
    inner = manager(job, kid(s, "helper"), name="batch", observers=None)
    root = manager(inner, kid(s, "web"), name="root")

    async with run_tree(root):
        await s.wait(lambda log: "stop:helper" in log)
        await inner.wait_stopped()
        assert "stop:web" not in s.log


# -- bad input --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "error", "name"),
    [
        ({"restart": "permanent"}, TypeError, "restart"),
        ({"wait_ready": 1}, TypeError, "wait_ready"),
        ({"ready_timeout": 0}, ValueError, "ready_timeout"),
        ({"ready_timeout": float("nan")}, ValueError, "ready_timeout"),
        ({"ready_timeout": "5"}, TypeError, "ready_timeout"),
        ({"shutdown_timeout": -1}, ValueError, "shutdown_timeout"),
        ({"shutdown_timeout": 10**400}, ValueError, "shutdown_timeout"),
        ({"significant": "yes"}, TypeError, "significant"),
        ({"significant": True, "restart": Restart.PERMANENT}, ValueError, "significant"),
    ],
)
def test_bad_child_options_are_refused_at_the_call(
    options: dict[str, Any], error: type[Exception], name: str
) -> None:
    s = Script()
    with pytest.raises(error, match=name):
        ProcessManagerBuilder().pre_insert(kid(s, "x"), **options)
    with pytest.raises(error, match=name):
        ProcessManager("m").insert(kid(s, "x"), **options)


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda b: b.strategy("one_for_all"), TypeError, "strategy"),
        (lambda b: b.intensity(-1, 5), ValueError, "max_restarts"),
        (lambda b: b.intensity(1.5, 5), TypeError, "max_restarts"),
        (lambda b: b.intensity(1, 0), ValueError, "within"),
        (lambda b: b.intensity(1, 10**400), ValueError, "within"),
        (lambda b: b.backoff(1.0), TypeError, "backoff"),
        (lambda b: b.ordered("yes"), TypeError, "ordered"),
    ],
)
def test_bad_policy_values_are_refused_at_the_call(
    call: Callable[[ProcessManagerBuilder], object], error: type[Exception], name: str
) -> None:
    with pytest.raises(error, match=name):
        call(ProcessManagerBuilder())


async def test_add_takes_the_same_options() -> None:
    s = Script()
    m = manager(kid(s, "base"), restarts=3)

    async with run_tree(m):  # returns once started (m.wait_started()): add() works
        m.add(kid(s, "p", return_runs=1), restart=Restart.PERMANENT)
        await s.wait(lambda log: log.count("start:p") == 2)
        with pytest.raises(ValueError, match="ready_timeout"):
            m.add(kid(s, "bad"), ready_timeout=-1)


@pytest.mark.parametrize("restart", [Restart.TRANSIENT, Restart.PERMANENT, Restart.TEMPORARY])
async def test_a_termination_signal_stops_the_tree_whatever_the_restart_policy(
    restart: Restart,
) -> None:
    async def receiver(ctx: RuntimeContext) -> None:
        await asyncio.sleep(0)
        raise TerminationSignal(signal.SIGTERM)

    s = Script()
    signals = opts(runnable(receiver, name="signals"), restart=restart)
    m = manager(signals, kid(s, "app"), restarts=10)
    with pytest.raises(TerminationSignal):
        await run_to_end(m)
    assert "stop:app" in s.log


async def test_observers_and_grace_period_can_be_set_before_start_only() -> None:
    rec = EventRecorder()
    m = ProcessManager("app")
    assert m.observers is None
    m.set_observers([rec])
    m.shutdown_grace_period = 1.5
    assert m.observers == (rec,) and m.shutdown_grace_period == 1.5
    with pytest.raises(ValueError, match="shutdown_grace_period"):
        m.shutdown_grace_period = -1
    s = Script()
    m.insert(kid(s, "a"))
    async with run_tree(m, recorder=rec) as tree:  # returns once started (m.wait_started())
        with pytest.raises(ManagerStateError, match="before start"):
            m.set_observers([])
        with pytest.raises(ManagerStateError, match="before start"):
            m.shutdown_grace_period = 3
        await tree.shutdown()
    assert rec.events


async def test_a_restart_cut_short_by_a_shutdown_completes_as_cancelled() -> None:
    s, rec = Script(), EventRecorder()
    m = manager(kid(s, "b", fail_runs=1), kid(s, "c"), restarts=3, backoff=NEVER, observers=[rec])

    async with run_tree(m, recorder=rec) as tree:
        await wait_for_child_state(m, "b", ChildState.BACKOFF, recorder=rec)
        await tree.shutdown(5)
    [done] = rec.of(RestartCompleted)
    assert (done.trigger, done.result) == ("b", "cancelled")
