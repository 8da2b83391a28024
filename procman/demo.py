"""The demo tree behind ``procman demo``: healthy workers, a flaky worker under a
RestartSupervisor, a nested ordered ONE_FOR_ALL pool (a database connection
that becomes ready before its consumers start, one consumer crashing now and
then so the whole pool restarts), a SignalReceiver and (optionally) the
metrics server."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence

from procman.builtin import RestartBackoff, RestartSupervisor, SignalReceiver
from procman.context import RuntimeContext, runnable
from procman.manager import ProcessManager
from procman.observer import Observer
from procman.policy import Strategy
from procman.runnable import Control, Next, Runnable, RuntimeControlMessage

__all__ = ["build_demo_tree", "worker"]

_log = logging.getLogger("procman.demo")


class FlakyError(RuntimeError):
    """What the demo's flaky worker raises now and then."""


def worker(
    name: str,
    period: float = 0.5,
    fail_after: float | None = None,
    ready_after: float | None = None,
) -> Runnable:
    """A worker that 'works' every ``period`` seconds; fails after ``fail_after`` if set.

    With ``ready_after`` it first 'connects' for that long, then signals readiness.
    """

    async def run(ctx: RuntimeContext) -> None:
        loop = asyncio.get_running_loop()
        if ready_after is not None:
            match await ctx.tick(asyncio.sleep(ready_after)):
                case Control(RuntimeControlMessage.SHUTDOWN):
                    return
                case _:
                    ctx.ready()
                    _log.info("%s: connected", name)
        deadline = None if fail_after is None else loop.time() + fail_after
        beats = 0
        while True:
            match await ctx.tick(asyncio.sleep(period)):
                case Next():
                    beats += 1
                    _log.debug("%s: heartbeat %d", name, beats)
                    if deadline is not None and loop.time() >= deadline:
                        raise FlakyError(f"{name} crashed after {beats} heartbeats")
                case Control(RuntimeControlMessage.SHUTDOWN):
                    return
                case Control(RuntimeControlMessage.RELOAD):
                    _log.info("%s: reloaded", name)
                case Control():
                    pass

    return runnable(run, name=name)


def build_demo_tree(
    *,
    observers: Sequence[Observer] | None = None,
    extra: Sequence[Runnable] = (),
    signals: bool = True,
    grace: float = 5.0,
) -> ProcessManager:
    """The demo tree; ``extra`` children (a metrics server, say) are added to the root."""
    root = ProcessManager("demo", shutdown_grace_period=grace, observers=observers)
    for i in range(3):
        root.insert(worker(f"worker-{i}", period=0.5))
    flaky = RestartSupervisor(
        worker("flaky", period=0.2, fail_after=1.0 + random.random()),
        RestartBackoff(initial=0.2, max=2.0, factor=2.0, jitter=0.2),
    )
    root.insert(flaky)
    nested = ProcessManager(
        "nested",
        shutdown_grace_period=grace,
        strategy=Strategy.ONE_FOR_ALL,
        max_restarts=1000,
        within=60,
        backoff=RestartBackoff(initial=0.2, max=2.0),
        ordered=True,
    )
    nested.insert(worker("db", period=0.5, ready_after=0.2), wait_ready=True, ready_timeout=10)
    nested.insert(worker("consumer-0", period=0.3))
    nested.insert(worker("consumer-1", period=0.3, fail_after=2.0 + 2 * random.random()))
    root.insert(nested)
    if signals:
        root.insert(SignalReceiver())
    for child in extra:
        root.insert(child)
    return root
