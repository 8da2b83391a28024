"""Minimal reproducers of library bugs found by the policy property suite.

Each was a strict xfail until the library was fixed; now they guard the fixes.
They run on the virtual clock of
``_vclock``: timings are exact, so they are deterministic.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from procman import (
    Control,
    ProcessManager,
    RestartBackoff,
    Runnable,
    RuntimeContext,
    Strategy,
    runnable,
)

from ._vclock import run_virtual


class Runs:
    def __init__(self) -> None:
        self.starts: Counter[str] = Counter()
        self.live: Counter[str] = Counter()
        self.max_live: Counter[str] = Counter()

    def kid(self, name: str, fail_first_run_after: float | None = None) -> Runnable:
        async def body(ctx: RuntimeContext) -> None:
            self.starts[name] += 1
            self.live[name] += 1
            self.max_live[name] = max(self.max_live[name], self.live[name])
            try:
                if fail_first_run_after is not None and self.starts[name] == 1:
                    await asyncio.sleep(fail_first_run_after)
                    raise RuntimeError(f"{name} failed")
                while not isinstance(await ctx.tick(asyncio.sleep(3600)), Control):
                    pass
            finally:
                self.live[name] -= 1

        return runnable(body, name=name)


def test_a_child_in_backoff_joining_a_group_restart_runs_once() -> None:
    # REST_FOR_ONE, children a, b. b (the last child) fails at 0.01: its group is b
    # alone, so it waits its own backoff (0.2, until 0.21). a fails at 0.1: the group
    # a+b restarts after a's backoff (at 0.3). b's own timer still fires at 0.21 and
    # restarts b in the middle of the group restart; at 0.3 the group restarts b again.
    runs = Runs()

    async def main() -> None:
        m = ProcessManager(
            "root",
            observers=[],
            strategy=Strategy.REST_FOR_ONE,
            max_restarts=10,
            within=60,
            backoff=RestartBackoff(initial=0.2, max=0.2, factor=1),
            shutdown_grace_period=1,
        )
        m.insert(runs.kid("a", fail_first_run_after=0.1))
        m.insert(runs.kid("b", fail_first_run_after=0.01))
        task = asyncio.ensure_future(m.process_start())
        await asyncio.sleep(0.6)
        await asyncio.wait_for(m.process_handle().shutdown(), 30)
        await asyncio.wait_for(task, 5)

    run_virtual(main())
    assert runs.max_live["b"] == 1, f"b ran {runs.max_live['b']} times at once"
    assert runs.starts == {"a": 2, "b": 2}, runs.starts


class IgnoresShutdown:
    """Runs until cancelled (ignores the shutdown request); records how it ended."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def make(self) -> Runnable:
        async def body(ctx: RuntimeContext) -> None:
            try:
                while True:
                    await ctx.tick(asyncio.sleep(3600))
            except asyncio.CancelledError:
                self.log.append(f"cancelled:{self.name}")
                raise

        return runnable(body, name=self.name)


def test_a_per_child_shutdown_timeout_does_not_abandon_the_other_children() -> None:
    # grace 1.0, cancel_timeout 0.1; a has shutdown_timeout 0.01, b has none; both
    # ignore the shutdown request and end when cancelled. Expected: a is cancelled at
    # 0.01, b at 1.0 (the grace period), both end, nothing is abandoned. Actual: at
    # 0.11 b is reported abandoned ("ignored cancellation"), though it was never
    # cancelled; the manager returns and b's task runs on, an orphan.
    from procman.events import ProcessAbandoned

    from ._policy_model import Recorder

    log: list[str] = []
    rec = Recorder()
    leftover: list[asyncio.Task[object]] = []

    async def main() -> None:
        m = ProcessManager("root", observers=[rec], shutdown_grace_period=1, cancel_timeout=0.1)
        m.insert(IgnoresShutdown("a", log).make(), shutdown_timeout=0.01)
        m.insert(IgnoresShutdown("b", log).make())
        task = asyncio.ensure_future(m.process_start())
        await m.wait_started()
        await asyncio.sleep(0.001)
        await asyncio.wait_for(m.process_handle().shutdown(), 30)
        await task
        leftover.extend(t for t in asyncio.all_tasks() if t is not asyncio.current_task())
        for t in leftover:
            t.cancel()

    run_virtual(main())
    assert not [e.child for e in rec.events if isinstance(e, ProcessAbandoned)]
    assert not leftover, leftover
    assert log == ["cancelled:a", "cancelled:b"], log


class NotAsync(Runnable):
    """``process_start`` is a plain def returning None: each run must fail with a TypeError."""

    def __init__(self) -> None:
        self.calls = 0

    def process_start(self) -> None:  # type: ignore[override]
        self.calls += 1

    def process_handle(self) -> object:  # type: ignore[override]
        from procman import RuntimeGuard

        return RuntimeGuard().handle()


@pytest.mark.parametrize(
    "with_observer",
    [
        pytest.param(True, id="observer"),
        pytest.param(False, id="no-observer"),
    ],
)
def test_a_process_start_that_is_not_async_is_called_once_per_run(with_observer: bool) -> None:
    from ._policy_model import Recorder

    child = NotAsync()

    async def main() -> None:
        m = ProcessManager("root", observers=[Recorder()] if with_observer else [])
        m.insert(child)
        with pytest.raises(TypeError, match="async def"):
            await asyncio.wait_for(m.process_start(), 5)

    run_virtual(main())
    assert child.calls == 1, f"process_start called {child.calls} times for one run"


def test_an_ordered_start_does_not_go_on_during_a_group_restart() -> None:
    # Ordered REST_FOR_ONE manager, all PERMANENT: c0 returns at 0.001, c1 at once,
    # c2 (wait_ready) ignores shutdown on its first run and is ready at once on later
    # runs, c3 returns at once. c1's return starts a group restart (c1, c2, c3); c0
    # returns during it (queued decision). When that group restarts, the ordered
    # start re-queues c1, c2, c3 and starts c1, c2; c0's queued decision then starts
    # a group restart (c0, c1, c2) that leaves out c3, still queued; c2 signals ready,
    # the ordered start moves on and starts c3 while the group is stopping c2 and c1.
    from procman import Restart

    from ._policy_model import (
        ChildOpts,
        LeafPlan,
        RunPlan,
        Scenario,
        TreePlan,
        check_log,
        run_scenario,
    )

    permanent = ChildOpts(restart=Restart.PERMANENT)

    def leaf(*runs: RunPlan, opts: ChildOpts = permanent) -> LeafPlan:
        return LeafPlan(runs, opts, "nowait", None)

    returns_at_once = RunPlan("return", 0.0, "early", 0.0)
    tree = TreePlan(
        children=(
            leaf(RunPlan("return", 0.001, "early", 0.0)),
            leaf(returns_at_once),
            leaf(
                RunPlan("ignore_shutdown", 0.0, "late", 0.0),
                returns_at_once,
                opts=ChildOpts(restart=Restart.PERMANENT, wait_ready=True, ready_timeout=0.005),
            ),
            leaf(returns_at_once),
        ),
        opts=permanent,
        strategy=Strategy.REST_FOR_ONE,
        max_restarts=2,
        within=30.0,
        backoff=(0.0, 0.0, 1.0),
        ordered=True,
        grace=0.01,
        cancel_timeout=0.01,
    )
    sc = Scenario(tree=tree, shutdown_at=0.125, reload_at=None, observer_fault=None)
    out = run_virtual(run_scenario(sc, observed=False))
    check_log(sc, out)  # "root/c1 asked to stop while later siblings run: ['root/c3']"
