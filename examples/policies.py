"""Supervision policies in one tree: readiness, ordered start, a group restart, a batch job.

python examples/policies.py

The root manager starts its children in order, each once the previous one
is ready, and stops them in reverse order:

1. ``db-pool`` (``wait_ready=True``): connects (simulated), then calls
   ``ctx.ready()``; nothing after it starts before that.
2. ``pipeline``: a nested ONE_FOR_ALL manager (a producer and a consumer
   sharing a queue, so they must restart together) with an intensity of 3
   restarts within 10 s and a short backoff. The consumer fails once; the
   manager stops the producer, waits the backoff and restarts both. The
   root waits for it (``wait_ready=True``): a nested manager is ready when
   its children are.
3. ``metrics-sidecar``: runs beside the job and flushes on shutdown, with
   its own ``shutdown_timeout``.
4. ``batch-job`` (``significant=True``): collects results from the
   pipeline; when it returns, the whole tree shuts down gracefully
   (reverse order) and ``process_start()`` returns ``None``.

An observer prints the policy decisions (readiness, restart, shutdown).
The program ends on its own in about a second.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from procman import (
    Control,
    LifecycleEvent,
    Next,
    ProcessManagerBuilder,
    Restart,
    RestartBackoff,
    RuntimeContext,
    RuntimeControlMessage,
    Strategy,
    runnable,
)
from procman.events import (
    ProcessFailed,
    ProcessReady,
    RestartCompleted,
    RestartRequested,
    ShutdownRequested,
)

T0 = time.monotonic()


def say(who: str, what: str) -> None:
    print(f"[{time.monotonic() - T0:5.2f}s] {who}: {what}", flush=True)


class PrintPolicyEvents:
    """An observer: prints the events that show the policies at work."""

    def on_event(self, event: LifecycleEvent) -> None:
        match event:
            case ProcessReady(child=child):
                say("event", f"ready {event.supervisor}/{child}")
            case ProcessFailed(child=child, exception=exc):
                say("event", f"failed {event.supervisor}/{child}: {exc}")
            case RestartRequested(strategy=strategy, trigger=trigger, children=children):
                members = ", ".join(children)
                say(
                    "event",
                    f"restart requested in {event.supervisor}: strategy {strategy}, "
                    f"trigger {trigger}, restarting [{members}]",
                )
            case RestartCompleted(strategy=strategy, trigger=trigger):
                say("event", f"restart completed in {event.supervisor} ({strategy}, {trigger})")
            case ShutdownRequested(reason=reason):
                say("event", f"shutdown of {event.supervisor} ({reason})")


class Shared:
    """What the children share: the work queue and the job's results."""

    def __init__(self) -> None:
        self.items: asyncio.Queue[int] = asyncio.Queue(maxsize=2)
        self.results: asyncio.Queue[int] = asyncio.Queue()
        self.connected = False
        self.consumer_runs = 0
        self.cursor = itertools.count(1)


def stopping(op: object) -> bool:
    return isinstance(op, Control) and op.message is RuntimeControlMessage.SHUTDOWN


def make_tree(shared: Shared) -> ProcessManagerBuilder:
    async def db_pool(ctx: RuntimeContext) -> None:
        say("db-pool", "connecting")
        await asyncio.sleep(0.2)  # the simulated connect
        shared.connected = True
        ctx.ready()  # the ordered start moves on only now
        say("db-pool", "ready")
        while not stopping(await ctx.tick(asyncio.sleep(3600))):
            pass
        shared.connected = False
        say("db-pool", "closed")

    async def producer(ctx: RuntimeContext) -> None:
        say("producer", "started")
        while True:
            match await ctx.tick(shared.items.put(next(shared.cursor))):
                case Next():
                    await asyncio.sleep(0.02)
                case Control(RuntimeControlMessage.SHUTDOWN):
                    say("producer", "stopped")
                    return
                case Control():
                    pass

    async def consumer(ctx: RuntimeContext) -> None:
        shared.consumer_runs += 1
        run = shared.consumer_runs
        say("consumer", f"started (run {run}, database connected: {shared.connected})")
        handled = 0
        while True:
            match await ctx.tick(shared.items.get()):
                case Next(item):
                    handled += 1
                    if run == 1 and handled == 3:
                        say("consumer", f"lost the connection at item {item}")
                        raise ConnectionResetError("database connection reset")
                    await shared.results.put(item)
                case Control(RuntimeControlMessage.SHUTDOWN):
                    say("consumer", "stopped")
                    return
                case Control():
                    pass

    async def metrics_sidecar(ctx: RuntimeContext) -> None:
        say("metrics-sidecar", "started")
        while True:
            match await ctx.tick(asyncio.sleep(0.25)):
                case Next():
                    pass  # would push metrics here
                case Control(RuntimeControlMessage.SHUTDOWN):
                    say("metrics-sidecar", "flushed and stopped")
                    return
                case Control():
                    pass

    async def batch_job(ctx: RuntimeContext) -> None:
        say("batch-job", "started")
        done = []
        while len(done) < 6:
            match await ctx.tick(shared.results.get()):
                case Next(item):
                    done.append(item)
                case Control(RuntimeControlMessage.SHUTDOWN):
                    say("batch-job", "stopped early")
                    return
                case Control():
                    pass
        say("batch-job", f"done: {len(done)} items; returning ends the tree")

    pipeline = (
        ProcessManagerBuilder()
        .name("pipeline")
        .strategy(Strategy.ONE_FOR_ALL)
        .intensity(max_restarts=3, within=10)
        .backoff(RestartBackoff(initial=0.1, max=1.0))
        .pre_insert(runnable(producer, name="producer"))
        .pre_insert(runnable(consumer, name="consumer"))
        .build()
    )
    return (
        ProcessManagerBuilder()
        .name("app")
        .ordered(True)
        .shutdown_grace_period(5)
        .observer(PrintPolicyEvents())
        .pre_insert(runnable(db_pool, name="db-pool"), wait_ready=True, ready_timeout=5)
        .pre_insert(pipeline, wait_ready=True, restart=Restart.TRANSIENT)
        .pre_insert(runnable(metrics_sidecar, name="metrics-sidecar"), shutdown_timeout=1)
        .pre_insert(runnable(batch_job, name="batch-job"), significant=True)
    )


async def main() -> None:
    root = make_tree(Shared()).build()
    result = await asyncio.wait_for(root.process_start(), timeout=20)
    say("app", f"tree ended: process_start() returned {result!r}")


if __name__ == "__main__":
    asyncio.run(main())
