"""Property-based tests: random trees of misbehaving children, random shutdown/reload timing.

Invariants checked on every example:

* the root returns (or raises) within its grace periods plus a bound: nothing hangs;
* when a failure reaches the root, the root raises the first such exception object,
  and it raises if and only if an unsupervised leaf really failed;
* every started run has exactly one terminal event, and each child's events follow
  the legal order (a small state machine);
* attached metrics agree with the events;
* no task is left pending once abandoned children are released, and asyncio reports
  no "exception was never retrieved" / "destroyed but pending".
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from procman import (
    Control,
    ManagerStateError,
    Next,
    ProcessControlHandler,
    ProcessManager,
    Runnable,
    RuntimeControlMessage,
    RuntimeGuard,
)
from procman.builtin import RestartBackoff, RestartSupervisor
from procman.events import (
    TERMINAL_EVENTS,
    LifecycleEvent,
    ProcessAbandoned,
    ProcessFailed,
    ProcessRestarted,
    ProcessStarted,
    ProcessStarting,
    ProcessStopTimedOut,
    RestartScheduled,
)
from procman.lowlevel import current_record as current_child

KINDS = (
    "succeed",
    "fail",
    "hang",
    "ignore_shutdown",
    "swallow_cancel_return",
    "swallow_cancel_forever",
    "reload_raises",
    "shutdown_raises",
    "adder",
)
GRACE = 0.03
CANCEL_TIMEOUT = 0.05


class LeafError(Exception):
    """What failing leaves raise (one fresh object per failure)."""


@dataclass
class World:
    raised: list[BaseException] = field(default_factory=list)
    release: asyncio.Event | None = None
    added: int = 0


@dataclass(frozen=True)
class LeafSpec:
    kind: str
    delay: float
    restart: bool


@dataclass(frozen=True)
class TreeSpec:
    children: tuple[LeafSpec | TreeSpec, ...]


class _Handle(ProcessControlHandler):
    def __init__(self, leaf: Leaf) -> None:
        self.leaf = leaf

    async def shutdown(self) -> None:
        if self.leaf.spec.kind == "shutdown_raises":
            raise RuntimeError("shutdown handler bug")
        await self.leaf.guard.handle().shutdown()

    async def reload(self) -> None:
        if self.leaf.spec.kind == "reload_raises":
            raise RuntimeError("reload handler bug")
        await self.leaf.guard.handle().reload()


class Leaf(Runnable):
    def __init__(self, name: str, spec: LeafSpec, world: World) -> None:
        self.name, self.spec, self.world = name, spec, world
        self.guard = RuntimeGuard()
        self.handle = _Handle(self)

    def process_name(self) -> str:
        return self.name

    def process_handle(self) -> ProcessControlHandler:
        return self.handle

    async def process_start(self) -> None:
        kind = self.spec.kind
        ticker = self.guard.runtime_ticker()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.spec.delay
        try:
            while True:
                remaining = max(deadline - loop.time(), 0.0)
                op = await ticker.tick(asyncio.sleep(remaining))
                match op:
                    case Next():
                        if kind == "succeed":
                            return
                        if kind == "fail":
                            exc = LeafError(self.name)
                            self.world.raised.append(exc)
                            raise exc
                        if kind == "adder":
                            self._add_sibling()
                        deadline = math.inf if kind != "adder" else loop.time() + 0.01
                    case Control(RuntimeControlMessage.SHUTDOWN):
                        if kind != "ignore_shutdown":
                            return
                    case Control():
                        pass
        except asyncio.CancelledError:
            if kind == "swallow_cancel_return":
                return
            if kind == "swallow_cancel_forever":
                release = self.world.release
                assert release is not None
                while not release.is_set():
                    with contextlib.suppress(asyncio.CancelledError):
                        await release.wait()
                return
            raise

    def _add_sibling(self) -> None:
        rec = current_child()
        if rec is None:
            return
        owner: Any = rec.owner
        with contextlib.suppress(ManagerStateError, AttributeError):
            self.world.added += 1
            name = f"{self.name}+{self.world.added}"
            owner.add(Leaf(name, LeafSpec("succeed", 0.005, False), self.world))


leaf_specs = st.builds(
    LeafSpec,
    kind=st.sampled_from(KINDS),
    delay=st.floats(min_value=0.0, max_value=0.03),
    restart=st.booleans(),
)


def trees(max_depth: int) -> st.SearchStrategy[TreeSpec]:
    if max_depth <= 1:
        return st.builds(TreeSpec, st.lists(leaf_specs, min_size=1, max_size=50).map(tuple))
    child = st.one_of(leaf_specs, trees(max_depth - 1))
    return st.builds(TreeSpec, st.lists(child, min_size=1, max_size=8).map(tuple))


tree_specs = st.one_of(trees(1), trees(2), trees(3), trees(4))


def build(spec: TreeSpec, name: str, world: World, observers: list[Any] | None) -> ProcessManager:
    m = ProcessManager(
        name,
        shutdown_grace_period=GRACE,
        cancel_timeout=CANCEL_TIMEOUT,
        observers=observers,
    )
    for i, child in enumerate(spec.children):
        if isinstance(child, TreeSpec):
            m.insert(build(child, f"m{i}", world, None))
            continue
        leaf = Leaf(f"c{i}", child, world)
        if child.restart:
            m.insert(RestartSupervisor(leaf, RestartBackoff(initial=0.0, max=0.005)))
        else:
            m.insert(leaf)
    return m


def depth(spec: TreeSpec) -> int:
    subs = [depth(c) for c in spec.children if isinstance(c, TreeSpec)]
    return 1 + max(subs, default=0)


def unsupervised_failure_possible(spec: TreeSpec) -> bool:
    return any(
        (isinstance(c, TreeSpec) and unsupervised_failure_possible(c))
        or (isinstance(c, LeafSpec) and c.kind == "fail" and not c.restart)
        for c in spec.children
    )


class Events:
    def __init__(self) -> None:
        self.events: list[LifecycleEvent] = []

    def on_event(self, event: LifecycleEvent) -> None:
        self.events.append(event)


TERMINAL = object()
LEGAL: dict[object, tuple[frozenset[str], str]] = {
    ProcessStarting: (frozenset({"init"}), "scheduled"),
    ProcessStarted: (frozenset({"scheduled"}), "running"),
    TERMINAL: (frozenset({"running"}), "ended"),
    RestartScheduled: (frozenset({"ended"}), "backoff"),
    ProcessRestarted: (frozenset({"backoff"}), "scheduled"),
}
"""Per child: state before (allowed) and after each event."""


def check_event_order(events: list[LifecycleEvent]) -> None:
    """Per child: Starting, then (Started [StopTimedOut]* terminal [Scheduled Restarted])*."""
    state: dict[tuple[str, str], str] = {}
    for ev in events:
        if isinstance(
            ev,
            (
                ProcessStarting,
                ProcessStarted,
                RestartScheduled,
                ProcessRestarted,
                ProcessStopTimedOut,
                *TERMINAL_EVENTS,
            ),
        ):
            key = (ev.supervisor, ev.child)
            cur = state.get(key, "init")
            if isinstance(ev, ProcessStopTimedOut):
                assert cur != "init", (key, cur, ev)
                continue
            kind = TERMINAL if isinstance(ev, TERMINAL_EVENTS) else type(ev)
            allowed, after = LEGAL[kind]
            if isinstance(ev, ProcessAbandoned):
                allowed = allowed | {"scheduled", "backoff"}  # abandoned before (re)starting
            assert cur in allowed, (key, cur, ev)
            state[key] = after
    for key, cur in state.items():
        assert cur in ("ended", "scheduled", "backoff"), (key, cur)


def check_metrics(registry: Any, events: list[LifecycleEvent]) -> None:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    text = generate_latest(registry).decode()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            values[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def total(name: str, **labels: str) -> float:
        return sum(
            v
            for (n, ls), v in values.items()
            if n == name and all(dict(ls).get(k) == val for k, val in labels.items())
        )

    starts = sum(1 for e in events if isinstance(e, ProcessStarted))
    assert total("procman_child_starts_total") == starts
    for outcome in ("ok", "error", "cancelled", "timeout"):
        expected = sum(
            1
            for e in events
            if isinstance(e, TERMINAL_EVENTS) and getattr(e, "outcome", None) == outcome
        )
        assert total("procman_child_exits_total", outcome=outcome) == expected, outcome
    failures = sum(1 for e in events if isinstance(e, ProcessFailed))
    assert total("procman_child_failures_total") == failures
    restarts = sum(1 for e in events if isinstance(e, ProcessRestarted))
    assert total("procman_child_restarts_total") == restarts
    timeouts = sum(1 for e in events if isinstance(e, ProcessStopTimedOut))
    assert total("procman_child_stop_timeouts_total") == timeouts


async def scenario(
    spec: TreeSpec,
    shutdown_at: float | None,
    reload_at: float | None,
    cancel_at: float | None,
    with_metrics: bool,
) -> None:
    world = World(release=asyncio.Event())
    rec = Events()
    observers: list[Any] = [rec]
    registry = None
    if with_metrics:
        from prometheus_client import CollectorRegistry

        from procman_metrics import PrometheusMetrics

        registry = CollectorRegistry()
        observers.append(PrometheusMetrics(registry=registry))
    root = build(spec, "root", world, observers)
    loop = asyncio.get_running_loop()
    problems: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: problems.append(ctx))

    root_task = asyncio.create_task(root.process_start())
    try:
        await check_run(
            spec, root, root_task, world, rec, registry, problems, shutdown_at, reload_at, cancel_at
        )
    finally:
        world.release.set()  # never leave a cancellation-swallowing child blocking asyncio.run


async def check_run(
    spec: TreeSpec,
    root: ProcessManager,
    root_task: asyncio.Task[None],
    world: World,
    rec: Events,
    registry: Any,
    problems: list[dict[str, Any]],
    shutdown_at: float | None,
    reload_at: float | None,
    cancel_at: float | None,
) -> None:
    loop = asyncio.get_running_loop()

    async def drive() -> None:
        t0 = loop.time()
        actions = [(reload_at, "reload"), (shutdown_at, "shutdown"), (cancel_at, "cancel")]
        for at, action in sorted((t, a) for t, a in actions if t is not None):
            await asyncio.sleep(max(0.0, at - (loop.time() - t0)))
            if action == "reload":
                await root.process_handle().reload()
            elif action == "shutdown":
                await root.process_handle().shutdown()
            else:
                root_task.cancel()

    driver = asyncio.create_task(drive())
    # Bound: every level may wait its grace period plus the cancel timeout, plus the
    # leaves' own delays, the driver's timing and generous slack for a loaded machine.
    bound = depth(spec) * (GRACE + CANCEL_TIMEOUT) * 2 + 0.2 + 5.0
    done, _ = await asyncio.wait({root_task}, timeout=bound + (shutdown_at or 0.2))
    assert done, f"root did not finish within {bound:.2f}s"
    outcome: BaseException | None = None
    outcome = asyncio.CancelledError() if root_task.cancelled() else root_task.exception()
    driver.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await driver

    events = rec.events
    supervised = {
        f"c{i}" for i, c in enumerate(spec.children) if isinstance(c, LeafSpec) and c.restart
    }
    root_failures = [
        e
        for e in events
        if isinstance(e, ProcessFailed) and e.supervisor == "root" and e.child not in supervised
    ]
    if root_failures:  # errors beat cancellation
        assert outcome is root_failures[0].exception
    elif root_task.cancelled():
        assert cancel_at is not None
    else:
        assert outcome is None, repr(outcome)
    if outcome is not None and not root_task.cancelled():
        assert any(outcome is r for r in world.raised)
    # an unsupervised leaf that really failed always reaches the root
    if not unsupervised_failure_possible(spec):
        assert outcome is None or root_task.cancelled()
    check_event_order(events)
    if registry is not None:
        check_metrics(registry, events)

    # release abandoned children, then nothing procman created may stay pending
    assert world.release is not None
    world.release.set()
    for _ in range(50):
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if not pending:
            break
        await asyncio.sleep(0.01)
    assert not pending, pending
    gc.collect()
    await asyncio.sleep(0)
    assert not problems, problems


def _has_metrics() -> bool:
    try:
        import procman_metrics  # noqa: F401
        from procman_metrics import PrometheusMetrics  # noqa: F401
    except ImportError:
        return False
    return True


@given(
    spec=tree_specs,
    shutdown_at=st.one_of(st.none(), st.floats(min_value=0.0, max_value=0.05)),
    reload_at=st.one_of(st.none(), st.floats(min_value=0.0, max_value=0.05)),
    cancel_at=st.one_of(st.none(), st.none(), st.floats(min_value=0.0, max_value=0.08)),
    with_metrics=st.booleans(),
)
def test_random_trees_keep_the_invariants(
    spec: TreeSpec,
    shutdown_at: float | None,
    reload_at: float | None,
    cancel_at: float | None,
    with_metrics: bool,
) -> None:
    if shutdown_at is None and not unsupervised_failure_possible(spec):
        shutdown_at = 0.06  # a tree of well-behaved children would run forever otherwise
    asyncio.run(scenario(spec, shutdown_at, reload_at, cancel_at, with_metrics and _has_metrics()))
