"""Minimal reproducers of library bugs found by the policy property suite.

Each is ``xfail(strict=True)`` until the library is fixed (then it passes, the
strict xfail fails, and the marker must go). They run on the virtual clock of
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

    def kid(self, name: str, fail_first_run_after: float | None = None) -> object:
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


@pytest.mark.xfail(
    strict=True,
    reason="a child in backoff that joins a group restart keeps its own restart timer: "
    "the timer restarts it during the group restart and the group restarts it again "
    "(two concurrent runs of one child)",
)
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
        )
        m.insert(runs.kid("a", fail_first_run_after=0.1))
        m.insert(runs.kid("b", fail_first_run_after=0.01))
        task = asyncio.ensure_future(m.process_start())
        await asyncio.sleep(0.6)
        await asyncio.wait_for(m.process_handle().shutdown(), 5)
        await asyncio.wait_for(task, 5)

    run_virtual(main())
    assert runs.max_live["b"] == 1, f"b ran {runs.max_live['b']} times at once"
    assert runs.starts == {"a": 2, "b": 2}, runs.starts
