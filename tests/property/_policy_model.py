"""Random supervision trees with policies and callback faults, and the invariants they keep.

Shared by ``test_policy_properties.py`` (policies, well-behaved callbacks) and
``test_fault_properties.py`` (the same trees plus the callback faults of issue 9).

A drawn :class:`Scenario` is a tree of managers (strategy, intensity, backoff,
ordered start, grace and cancel timeouts) whose children are nested managers or
scripted leaves (restart type, ``wait_ready`` with a ``ready_timeout``, own
``shutdown_timeout``, ``significant``), one script per run (how long it runs,
how it ends, when it signals readiness), a handle that may raise, an observer
that may raise, a reload and a shutdown at drawn times. It runs on a
virtual-time loop (:mod:`._vclock`): drawn durations are exact and a loaded
machine changes nothing, so the same scenario can run twice, with and without
observers, and the two runs can be compared.

Leaves and managers write what they do to a :class:`Log` (run start and end,
readiness, every shutdown request they receive); the log does not depend on the
observers, so both runs are checked with it. Events and metrics are checked on
the observed run.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from procman import (
    Control,
    ManagerPhase,
    ManagerStateError,
    Next,
    ProcessManager,
    ReadyTimeoutError,
    Restart,
    RestartBackoff,
    RestartIntensityExceeded,
    Runnable,
    RuntimeControlMessage,
    RuntimeGuard,
    Strategy,
)
from procman.events import (
    TERMINAL_EVENTS,
    LifecycleEvent,
    ProcessAbandoned,
    ProcessCancelled,
    ProcessFailed,
    ProcessReady,
    ProcessRestarted,
    ProcessStarted,
    ProcessStarting,
    ProcessStopped,
    ProcessStopTimedOut,
    RestartCompleted,
    RestartRequested,
    RestartScheduled,
    ShutdownCompleted,
    ShutdownRequested,
)
from procman.handle import ManagerHandle

_SHUTDOWN = RuntimeControlMessage.SHUTDOWN
LARGE_WITHIN = 30.0
"""An intensity window no run comes near: restarts then never leave the window."""
WITHINS = (LARGE_WITHIN, LARGE_WITHIN, 0.005, 0.02)
SLACK = 0.01
"""Virtual seconds added to every time bound (loop iterations cost ``QUANTUM`` each)."""


# -- what children raise ------------------------------------------------------------------
class LeafError(Exception):
    """A leaf run failing with an ordinary exception."""


class SyncStartError(Exception):
    """A plain ``def process_start`` raising before returning a coroutine."""


class CustomBase(BaseException):
    """A ``BaseException`` that is not an ``Exception`` (nor a cancellation)."""


class HandleBug(Exception):
    """What a faulty handle or observer raises when drawn to raise an ``Exception``."""


EXC_KINDS = ("error", "cancelled", "generator_exit", "custom_base")


def make_exc(kind: str) -> BaseException:
    if kind == "error":
        return HandleBug("injected")
    if kind == "cancelled":
        return asyncio.CancelledError()
    if kind == "generator_exit":
        return GeneratorExit()
    return CustomBase("injected")


# -- plans --------------------------------------------------------------------------------
POLICY_ENDS = ("return", "fail", "hang", "ignore_shutdown")
"""How a run ends, well-behaved: returns, raises, runs until asked to stop, until cancelled."""
FAULT_ENDS = (
    *POLICY_ENDS,
    "custom_base",  # raises a BaseException subclass
    "generator_exit",  # raises GeneratorExit
    "self_cancel",  # raises CancelledError nobody asked for
    "sync_raise",  # process_start raises synchronously
    "not_async",  # process_start returns None (not a coroutine function)
)
NO_RESTART_ENDS = frozenset({"return", "hang", "ignore_shutdown", "self_cancel"})
"""Endings that never make a TRANSIENT child restart on its own."""
EVENT_TYPES = (
    ProcessStarting,
    ProcessStarted,
    ProcessReady,
    ProcessStopped,
    ProcessFailed,
    ProcessCancelled,
    ProcessStopTimedOut,
    RestartRequested,
    RestartScheduled,
    ProcessRestarted,
    RestartCompleted,
    ShutdownRequested,
    ShutdownCompleted,
)


@dataclass(frozen=True)
class RunPlan:
    end: str
    delay: float  # when the run ends (for endings that do not wait)
    ready: str  # early | late | never
    ready_delay: float


@dataclass(frozen=True)
class ChildOpts:
    restart: Restart = Restart.TRANSIENT
    wait_ready: bool = False
    ready_timeout: float = 60.0
    shutdown_timeout: float | None = None
    significant: bool = False

    def kwargs(self) -> dict[str, Any]:
        return {
            "restart": self.restart,
            "wait_ready": self.wait_ready,
            "ready_timeout": self.ready_timeout,
            "shutdown_timeout": self.shutdown_timeout,
            "significant": self.significant,
        }


@dataclass(frozen=True)
class LeafPlan:
    runs: tuple[RunPlan, ...]  # run n follows runs[min(n, len - 1)]
    opts: ChildOpts
    handle: str  # nowait (has control_nowait) | duck (only shutdown()/reload())
    fault: tuple[str, str] | None  # (site, exception kind) the handle raises


@dataclass(frozen=True)
class TreePlan:
    children: tuple[LeafPlan | TreePlan, ...]
    opts: ChildOpts  # how its parent supervises it (unused for the root)
    strategy: Strategy
    max_restarts: int
    within: float
    backoff: tuple[float, float, float]  # initial, max, factor
    ordered: bool
    grace: float
    cancel_timeout: float


@dataclass(frozen=True)
class ObserverFault:
    site: str  # on_event | wants
    exc: str
    on: frozenset[str] | None  # event names that raise (None: every event)


@dataclass(frozen=True)
class Scenario:
    tree: TreePlan
    shutdown_at: float
    reload_at: float | None
    observer_fault: ObserverFault | None


def managers(tree: TreePlan) -> list[TreePlan]:
    out = [tree]
    for c in tree.children:
        if isinstance(c, TreePlan):
            out.extend(managers(c))
    return out


# -- hypothesis strategies ------------------------------------------------------------------
durations = st.one_of(
    st.sampled_from([0.0, 0.001, 0.005, 0.01, 0.02]), st.floats(min_value=0.0, max_value=0.03)
)


@st.composite
def child_opts(draw: Any, *, leaf: bool) -> ChildOpts:
    restart = draw(st.sampled_from(list(Restart)))
    significant = restart is not Restart.PERMANENT and draw(st.integers(0, 5)) == 0
    wait_ready = draw(st.booleans())
    ready_timeout = draw(st.sampled_from([0.005, 0.02, 0.05])) if wait_ready else 60.0
    shutdown_timeout = draw(st.sampled_from([None, None, 0.0, 0.005, 0.02, 0.1]))
    return ChildOpts(restart, wait_ready, ready_timeout, shutdown_timeout, significant)


@st.composite
def leaf_plans(draw: Any, *, faults: bool) -> LeafPlan:
    ends = FAULT_ENDS if faults else POLICY_ENDS
    runs = draw(
        st.lists(
            st.builds(
                RunPlan,
                end=st.sampled_from(ends),
                delay=durations,
                ready=st.sampled_from(["early", "late", "never"]),
                ready_delay=durations,
            ),
            min_size=1,
            max_size=3,
        )
    )
    handle = draw(st.sampled_from(["nowait", "duck"]))
    fault = None
    if faults and draw(st.booleans()):
        sites = ["shutdown_sync", "shutdown_async", "reload_sync", "reload_async"]
        if handle == "nowait":
            sites.append("nowait")
        fault = (draw(st.sampled_from(sites)), draw(st.sampled_from(EXC_KINDS)))
    return LeafPlan(tuple(runs), draw(child_opts(leaf=True)), handle, fault)


@st.composite
def tree_plans(draw: Any, *, depth: int, faults: bool) -> TreePlan:
    child = leaf_plans(faults=faults)
    if depth > 1:
        child = st.one_of(child, child, tree_plans(depth=depth - 1, faults=faults))
    children = draw(st.lists(child, min_size=1, max_size=5))
    initial = draw(st.sampled_from([0.0, 0.0, 0.001, 0.005]))
    return TreePlan(
        children=tuple(children),
        opts=draw(child_opts(leaf=False)),
        strategy=draw(st.sampled_from(list(Strategy))),
        max_restarts=draw(st.integers(0, 4)),
        within=draw(st.sampled_from(WITHINS)),
        backoff=(
            initial,
            initial * draw(st.sampled_from([1, 4])),
            float(draw(st.sampled_from([1, 2]))),
        ),
        ordered=draw(st.booleans()),
        grace=draw(st.sampled_from([0.01, 0.03])),
        cancel_timeout=draw(st.sampled_from([0.01, 0.03])),
    )


@st.composite
def observer_faults(draw: Any) -> ObserverFault | None:
    if not draw(st.booleans()):
        return None
    names = [cls.name for cls in EVENT_TYPES]
    on = draw(st.one_of(st.none(), st.frozensets(st.sampled_from(names), min_size=1)))
    return ObserverFault(
        draw(st.sampled_from(["on_event", "wants"])), draw(st.sampled_from(EXC_KINDS)), on
    )


@st.composite
def scenarios(draw: Any, *, faults: bool) -> Scenario:
    tree = draw(tree_plans(depth=draw(st.integers(1, 3)), faults=faults))
    return Scenario(
        tree=tree,
        shutdown_at=draw(st.floats(min_value=0.0, max_value=0.15)),
        reload_at=draw(st.one_of(st.none(), st.floats(min_value=0.0, max_value=0.1))),
        observer_fault=draw(observer_faults()) if faults else None,
    )


# -- the runnables ----------------------------------------------------------------------------
class Log:
    """What the runnables did, in order: (what, path)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []

    def add(self, what: str, path: str) -> None:
        self.entries.append((what, path))


@dataclass
class World:
    log: Log = field(default_factory=Log)
    raised: list[BaseException] = field(default_factory=list)
    leaves: dict[str, Leaf] = field(default_factory=dict)
    subs: dict[str, Sub] = field(default_factory=dict)
    double_calls: list[str] = field(default_factory=list)


class _LeafHandle:
    """Duck-typed: ``shutdown()`` / ``reload()`` only, plain defs returning awaitables or not."""

    def __init__(self, leaf: Leaf) -> None:
        self.leaf = leaf
        self.fault = leaf.plan.fault

    def _raise_at(self, site: str) -> None:
        if self.fault is not None and self.fault[0] == site:
            raise make_exc(self.fault[1])

    async def _raising(self, site: str) -> None:
        self._raise_at(site)

    def shutdown(self) -> Any:
        self.leaf.world.log.add("ask", self.leaf.path)  # logged when the manager asks
        self._raise_at("shutdown_sync")
        self.leaf.guard.send_nowait(_SHUTDOWN)
        if self.fault is not None and self.fault[0] == "shutdown_async":
            return self._raising("shutdown_async")
        return None

    def reload(self) -> Any:
        self._raise_at("reload_sync")
        self.leaf.guard.send_nowait(RuntimeControlMessage.RELOAD)
        if self.fault is not None and self.fault[0] == "reload_async":
            return self._raising("reload_async")
        return None


class _NowaitHandle(_LeafHandle):
    def control_nowait(self, message: RuntimeControlMessage) -> bool:
        if message is _SHUTDOWN:
            self.leaf.world.log.add("ask", self.leaf.path)
        self._raise_at("nowait")
        self.leaf.guard.send_nowait(message)
        return True


class Leaf(Runnable):
    def __init__(self, path: str, plan: LeafPlan, world: World) -> None:
        self.path = path
        self.name = path.rsplit("/", 1)[-1]
        self.plan = plan
        self.world = world
        self.guard = RuntimeGuard()
        self.calls = 0
        self.handle = _NowaitHandle(self) if plan.handle == "nowait" else _LeafHandle(self)
        world.leaves[path] = self

    def process_name(self) -> str:
        return self.name

    def process_handle(self) -> Any:
        return self.handle

    def process_start(self) -> Any:  # a plain def on purpose: it may raise or return None
        runs = self.plan.runs
        run = runs[min(self.calls, len(runs) - 1)]
        self.calls += 1
        task = asyncio.current_task()
        if task is not None and getattr(task.get_coro(), "__qualname__", "") == "start_of":
            # called again for the same run: a bug (see run_scenario's check)
            self.world.double_calls.append(self.path)
        if run.end == "sync_raise":
            raise SyncStartError(self.path)
        if run.end == "not_async":
            return None
        return self._run(run)

    async def _run(self, run: RunPlan) -> None:
        log = self.world.log
        log.add("start", self.path)
        try:
            await self._body(run)
        finally:
            log.add("end", self.path)

    def _ready(self) -> None:
        self.world.log.add("ready", self.path)
        self.guard.ready()  # a no-op unless wait_ready

    async def _body(self, run: RunPlan) -> None:
        loop = asyncio.get_running_loop()
        ticker = self.guard.runtime_ticker()
        t0 = loop.time()
        if run.ready == "early":
            self._ready()
        ready_at = t0 + run.ready_delay if run.ready == "late" else math.inf
        end_at = math.inf if run.end in ("hang", "ignore_shutdown") else t0 + run.delay
        while True:
            target = min(ready_at, end_at)
            wait: Any = (
                loop.create_future()
                if target == math.inf
                else asyncio.sleep(max(target - loop.time(), 0.0))
            )
            op = await ticker.tick(wait)
            match op:
                case Next():
                    now = loop.time()
                    if now >= ready_at:
                        ready_at = math.inf
                        self._ready()
                    if now >= end_at:
                        self._end(run)
                        return
                case Control(RuntimeControlMessage.SHUTDOWN):
                    if run.end != "ignore_shutdown":
                        return
                case Control():
                    pass

    def _end(self, run: RunPlan) -> None:
        end = run.end
        if end == "fail":
            exc = LeafError(self.path)
            self.world.raised.append(exc)
            raise exc
        if end == "custom_base":
            base = CustomBase(self.path)
            self.world.raised.append(base)
            raise base
        if end == "generator_exit":
            gen = GeneratorExit(self.path)
            self.world.raised.append(gen)
            raise gen
        if end == "self_cancel":
            raise asyncio.CancelledError


class _SubHandle(ManagerHandle):
    def __init__(self, manager: Sub) -> None:
        super().__init__(manager)
        self.sub = manager

    def control_nowait(self, message: RuntimeControlMessage) -> bool:
        if message is _SHUTDOWN:
            self.sub.world.log.add("ask", self.sub.tree_path)
        return super().control_nowait(message)


class Sub(ProcessManager):
    """A manager that logs its runs and the shutdown requests it receives."""

    def __init__(self, path: str, world: World, **kwargs: Any) -> None:
        super().__init__(path.rsplit("/", 1)[-1], **kwargs)
        self.tree_path = path
        self.world = world
        self._logged_handle = _SubHandle(self)
        world.subs[path] = self

    def process_handle(self) -> ManagerHandle:
        return self._logged_handle

    async def process_start(self) -> None:
        self.world.log.add("start", self.tree_path)
        try:
            await super().process_start()
        finally:
            self.world.log.add("end", self.tree_path)


def build(plan: TreePlan, path: str, world: World, observers: list[Any] | None) -> Sub:
    initial, maximum, factor = plan.backoff
    m = Sub(
        path,
        world,
        shutdown_grace_period=plan.grace,
        cancel_timeout=plan.cancel_timeout,
        observers=observers,
        strategy=plan.strategy,
        max_restarts=plan.max_restarts,
        within=plan.within,
        backoff=RestartBackoff(initial=initial, max=maximum, factor=factor, reset_after=1000),
        ordered=plan.ordered,
    )
    for i, child in enumerate(plan.children):
        runnable: Runnable
        if isinstance(child, TreePlan):
            runnable = build(child, f"{path}/m{i}", world, None)
        else:
            runnable = Leaf(f"{path}/c{i}", child, world)
        m.insert(runnable, **child.opts.kwargs())
    return m


# -- observers ---------------------------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.events: list[LifecycleEvent] = []

    def on_event(self, event: LifecycleEvent) -> None:
        self.events.append(event)


class WantingRecorder(Recorder):
    """A recorder with ``wants``, so a faulty ``wants`` of another observer is consulted."""

    def wants(self, event_type: type[LifecycleEvent]) -> bool:
        return True


class FaultyObserver:
    def __init__(self, fault: ObserverFault) -> None:
        self.fault = fault
        self.raised = 0

    def _maybe_raise(self, name: str) -> None:
        on = self.fault.on
        if on is None or name in on:
            self.raised += 1
            raise make_exc(self.fault.exc)

    def wants(self, event_type: type[LifecycleEvent]) -> bool:
        if self.fault.site == "wants":
            self._maybe_raise(event_type.name)
        return True

    def on_event(self, event: LifecycleEvent) -> None:
        if self.fault.site == "on_event":
            self._maybe_raise(event.name)


def metrics_available() -> bool:
    try:
        import prometheus_client  # noqa: F401

        from procman_metrics import PrometheusMetrics  # noqa: F401
    except ImportError:
        return False
    return True


# -- known library bugs ---------------------------------------------------------------------
# -- one run --------------------------------------------------------------------------------
@dataclass
class Outcome:
    error: BaseException | None
    elapsed: float
    log: list[tuple[str, str]]
    calls: dict[str, int]
    events: list[LifecycleEvent]
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float] | None
    world: World

    @property
    def error_type(self) -> type[BaseException] | None:
        return None if self.error is None else type(self.error)


async def run_scenario(sc: Scenario, *, observed: bool) -> Outcome:
    """Run the drawn tree once, check the run-independent invariants, return what happened."""
    world = World()
    recorder: Recorder = Recorder()
    observers: list[Any] = []
    registry = None
    if observed:
        fault = sc.observer_fault
        if fault is not None:
            observers.append(FaultyObserver(fault))
            if fault.site == "wants":
                recorder = WantingRecorder()
        observers.append(recorder)
        if metrics_available():
            from prometheus_client import CollectorRegistry

            from procman_metrics import PrometheusMetrics

            registry = CollectorRegistry()
            observers.append(PrometheusMetrics(registry=registry))
    root = build(sc.tree, "root", world, observers)
    loop = asyncio.get_running_loop()
    problems: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: problems.append(ctx))
    before = asyncio.all_tasks()

    t0 = loop.time()
    task = asyncio.create_task(root.process_start())

    async def drive() -> None:
        actions = sorted(
            (at, what)
            for at, what in ((sc.reload_at, "reload"), (sc.shutdown_at, "shutdown"))
            if at is not None
        )
        for at, what in actions:
            await asyncio.sleep(max(0.0, t0 + at - loop.time()))
            if what == "reload":
                await root.process_handle().reload()
            else:
                await root.process_handle().shutdown()

    driver = asyncio.create_task(drive())
    # Bound: the shutdown begins at shutdown_at at the latest; the root's grace period
    # bounds the whole shutdown (nested ones included), cancel_timeout the cancellation.
    bound = sc.shutdown_at + sc.tree.grace + sc.tree.cancel_timeout + SLACK
    await asyncio.wait({task}, timeout=bound)
    assert task.done(), f"the tree did not end within {bound:.4f}s (virtual); {root.phase}"
    elapsed = loop.time() - t0
    assert not task.cancelled(), "the root was cancelled though nobody cancelled it"
    error = task.exception()
    driver.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await driver

    # wait_stopped() returns, nothing is left running
    await asyncio.wait_for(root.wait_stopped(), 0.001)
    assert root.phase is ManagerPhase.STOPPED
    for path, sub in world.subs.items():
        assert sub.phase is not ManagerPhase.RUNNING, path
        assert sub.phase is not ManagerPhase.STOPPING, path
    left = {t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()}
    assert not left, left
    assert not problems, problems

    events = list(recorder.events)
    log = list(world.log.entries)
    calls = {p: leaf.calls for p, leaf in world.leaves.items()}
    assert not world.double_calls, f"process_start called twice for one run: {world.double_calls}"
    metrics = read_metrics(registry) if registry is not None else None

    # the manager can be started again (and shut down again within its bounds)
    second = asyncio.create_task(root.process_start())
    await asyncio.wait_for(root.wait_started(), 0.001)
    await asyncio.wait_for(
        asyncio.shield(root.process_handle().shutdown()),
        sc.tree.grace + sc.tree.cancel_timeout + SLACK,
    )
    await asyncio.wait({second}, timeout=0.001)
    assert second.done(), "the second run did not end after its shutdown returned"
    assert not second.cancelled()
    assert not isinstance(second.exception(), ManagerStateError), second.exception()
    assert root.phase is ManagerPhase.STOPPED
    left = {t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()}
    assert not left, left
    assert not problems, problems
    return Outcome(error, elapsed, log, calls, events, metrics, world)


def read_metrics(registry: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in fam.samples:
            values[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return values


# -- invariants ------------------------------------------------------------------------------
def plans_by_path(tree: TreePlan, path: str = "root") -> dict[str, LeafPlan | TreePlan]:
    out: dict[str, LeafPlan | TreePlan] = {path: tree}
    for i, c in enumerate(tree.children):
        if isinstance(c, TreePlan):
            out.update(plans_by_path(c, f"{path}/m{i}"))
        else:
            out[f"{path}/c{i}"] = c
    return out


def child_paths(tree: TreePlan, path: str) -> list[str]:
    return [
        f"{path}/{'m' if isinstance(c, TreePlan) else 'c'}{i}" for i, c in enumerate(tree.children)
    ]


def check_outcome(sc: Scenario, out: Outcome) -> None:
    """The root returns None or raises a failure of one of its children (or the intensity)."""
    error = out.error
    if error is None:
        return
    allowed = (
        LeafError,
        CustomBase,
        GeneratorExit,
        SyncStartError,
        TypeError,
        ReadyTimeoutError,
        RestartIntensityExceeded,
    )
    assert isinstance(error, allowed), repr(error)
    if isinstance(error, LeafError | CustomBase | GeneratorExit):
        assert any(error is r for r in out.world.raised), error  # the very object raised
    if not out.events:
        return
    failed = [e for e in out.events if isinstance(e, ProcessFailed) and e.supervisor == "root"]
    if any(error is e.exception for e in failed):
        return
    # only the root's own intensity error is not the failure of one of its children
    root_children = {p.rsplit("/", 1)[-1] for p in child_paths(sc.tree, "root")}
    assert isinstance(error, RestartIntensityExceeded), (error, failed)
    assert error.child in root_children, error


def check_log(sc: Scenario, out: Outcome) -> None:
    """Invariants read from what the runnables did (the same with and without observers)."""
    plans = plans_by_path(sc.tree)
    log = out.log
    starts = Counter(p for what, p in log if what == "start")
    ends = Counter(p for what, p in log if what == "end")
    assert starts == ends, "a run started and never ended"
    runs_of: dict[str, int] = {p: out.calls.get(p, starts[p]) for p in plans}
    runs_of["root"] = 1

    for path, plan in plans.items():
        if path == "root":
            continue
        parent_path = path.rsplit("/", 1)[0]
        parent = plans[parent_path]
        assert isinstance(parent, TreePlan)
        parent_runs = runs_of[parent_path]
        runs = runs_of[path]
        # restart types: TEMPORARY never restarts, nothing restarts when max_restarts=0
        if plan.opts.restart is Restart.TEMPORARY or parent.max_restarts == 0:
            assert runs <= parent_runs, (path, runs, parent_runs)
        # a TRANSIENT leaf that never fails restarts only with a group (never ONE_FOR_ONE)
        if (
            isinstance(plan, LeafPlan)
            and plan.opts.restart is Restart.TRANSIENT
            and parent.strategy is Strategy.ONE_FOR_ONE
            and all(r.end in NO_RESTART_ENDS for r in plan.runs)
            and (not plan.opts.wait_ready or all(r.ready == "early" for r in plan.runs))
        ):
            assert runs <= parent_runs, (path, runs, parent_runs)

    # ordered managers: when a child is asked to stop, no later sibling is running
    running: Counter[str] = Counter()
    for what, path in log:
        if what == "start":
            running[path] += 1
        elif what == "end":
            running[path] -= 1
        elif what == "ask" and path != "root":
            parent_path = path.rsplit("/", 1)[0]
            parent = plans[parent_path]
            assert isinstance(parent, TreePlan)
            if not parent.ordered:
                continue
            siblings = child_paths(parent, parent_path)
            later = siblings[siblings.index(path) + 1 :]
            still = [s for s in later if running[s] > 0]
            assert not still, f"{path} asked to stop while later siblings run: {still}"


def _run_segments(
    events: list[LifecycleEvent], manager_paths: set[str]
) -> dict[tuple[str, int], list[LifecycleEvent]]:
    """Events of each manager, split by run of that manager (a nested one may be restarted)."""
    run_no: dict[str, int] = defaultdict(int)
    run_no["root"] = 1
    out: dict[tuple[str, int], list[LifecycleEvent]] = defaultdict(list)
    for ev in events:
        if isinstance(ev, ProcessStarted) and f"{ev.supervisor}/{ev.child}" in manager_paths:
            run_no[f"{ev.supervisor}/{ev.child}"] += 1
        out[(ev.supervisor, run_no[ev.supervisor])].append(ev)
    return out


LEGAL: dict[str, tuple[frozenset[str], str]] = {
    "starting": (frozenset({"init"}), "scheduled"),
    "started": (frozenset({"scheduled"}), "running"),
    "ready": (frozenset({"running"}), "running"),
    "terminal": (frozenset({"running"}), "ended"),
    "scheduled": (frozenset({"ended", "backoff"}), "backoff"),
    "restarted": (frozenset({"ended", "backoff"}), "scheduled"),
}


def _kind(ev: LifecycleEvent) -> str | None:
    if isinstance(ev, ProcessStarting):
        return "starting"
    if isinstance(ev, ProcessStarted):
        return "started"
    if isinstance(ev, ProcessReady):
        return "ready"
    if isinstance(ev, TERMINAL_EVENTS):
        return "terminal"
    if isinstance(ev, RestartScheduled):
        return "scheduled"
    if isinstance(ev, ProcessRestarted):
        return "restarted"
    return None


def check_events(sc: Scenario, out: Outcome) -> None:
    """Invariants read from the events of the observed run."""
    plans = plans_by_path(sc.tree)
    manager_paths = {p for p, plan in plans.items() if isinstance(plan, TreePlan)}
    for (mpath, _run), events in _run_segments(out.events, manager_paths).items():
        tree = plans[mpath]
        assert isinstance(tree, TreePlan)
        _check_manager_run(mpath, tree, events)


def _check_manager_run(mpath: str, tree: TreePlan, events: list[LifecycleEvent]) -> None:
    names = [p.rsplit("/", 1)[-1] for p in child_paths(tree, mpath)]
    index = {n: i for i, n in enumerate(names)}
    opts = {n: c.opts for n, c in zip(names, tree.children, strict=True)}
    state: dict[str, str] = defaultdict(lambda: "init")
    started_runs: Counter[str] = Counter()
    terminal_runs: Counter[str] = Counter()
    last_terminal: dict[str, LifecycleEvent] = {}
    decided: Counter[str] = Counter()
    restarted: Counter[str] = Counter()
    decision_times: list[float] = []
    first_start: dict[str, int] = {}
    ready_or_ended: set[str] = set()
    shutdown_seen = False
    for pos, ev in enumerate(events):
        if isinstance(ev, ShutdownRequested):
            shutdown_seen = True
        kind = _kind(ev)
        if kind is not None:
            name = ev.child  # type: ignore[attr-defined]
            allowed, after = LEGAL[kind]
            if isinstance(ev, ProcessAbandoned):
                allowed = allowed | {"scheduled", "backoff"}
            assert state[name] in allowed, (mpath, name, state[name], ev)
            state[name] = after
            if kind == "started":
                started_runs[name] += 1
                if name not in first_start:
                    first_start[name] = pos
                    # readiness order: in an ordered manager a child starts only after
                    # every earlier sibling started, and a wait_ready one is ready or ended
                    if tree.ordered:
                        for earlier in names[: index[name]]:
                            assert earlier in first_start, (mpath, name, earlier, "not started")
                            if opts[earlier].wait_ready:
                                assert earlier in ready_or_ended, (mpath, name, earlier)
            elif kind == "ready":
                ready_or_ended.add(name)
            elif kind == "terminal":
                terminal_runs[name] += 1
                ready_or_ended.add(name)
                last_terminal[name] = ev
            elif kind == "restarted":
                restarted[name] += 1
                assert restarted[name] <= decided[name], (mpath, name, "restart without decision")
                assert opts[name].restart is not Restart.TEMPORARY, (mpath, name)
        if isinstance(ev, RestartRequested):
            assert not shutdown_seen, (mpath, "restart decided during a shutdown", ev)
            assert tree.max_restarts > 0, (mpath, "restart with max_restarts=0", ev)
            trigger = ev.trigger
            restart = opts[trigger].restart
            assert restart is not Restart.TEMPORARY, (mpath, ev)
            if restart is Restart.TRANSIENT:
                assert isinstance(last_terminal.get(trigger), ProcessFailed), (
                    mpath,
                    "TRANSIENT restarted after a clean end",
                    ev,
                    last_terminal.get(trigger),
                )
            members = set(ev.children)
            assert all(opts[m].restart is not Restart.TEMPORARY for m in members), ev
            if tree.strategy is Strategy.ONE_FOR_ONE:
                assert ev.children == (trigger,), ev
            else:
                running = {
                    n
                    for n, s in state.items()
                    if s == "running" and opts[n].restart is not Restart.TEMPORARY
                }
                if tree.strategy is Strategy.REST_FOR_ONE:
                    assert all(index[m] >= index[trigger] for m in members), ev
                    running = {n for n in running if index[n] > index[trigger]}
                assert running <= members, (mpath, ev, running)
                assert trigger in members, ev
            for m in members:
                decided[m] += 1
            # intensity: never more than max_restarts restarts within `within` seconds
            decision_times.append(ev.time)
            window = [t for t in decision_times if t > ev.time - tree.within + 1e-9]
            assert len(window) <= tree.max_restarts, (mpath, len(window), tree.max_restarts)
    # exactly one terminal event per started run
    for name in names:
        assert started_runs[name] == terminal_runs[name], (
            mpath,
            name,
            started_runs[name],
            terminal_runs[name],
        )


def check_metrics(out: Outcome) -> None:
    """The Prometheus counters agree with the events, label set by label set."""
    values = out.metrics
    if values is None:
        return

    def value(metric: str, **labels: str) -> float:
        return sum(
            v
            for (n, ls), v in values.items()
            if n == metric and all(dict(ls).get(k) == val for k, val in labels.items())
        )

    per_child: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for ev in out.events:
        key = (ev.supervisor, getattr(ev, "child", ""))
        if isinstance(ev, ProcessStarted):
            per_child[key]["starts"] += 1
        elif isinstance(ev, ProcessRestarted):
            per_child[key]["restarts"] += 1
        elif isinstance(ev, ProcessFailed):
            per_child[key]["failures"] += 1
        if isinstance(ev, TERMINAL_EVENTS):
            per_child[key][f"exit:{ev.outcome}"] += 1  # type: ignore[attr-defined]
    for (sup, child), counts in per_child.items():
        labels = {"supervisor": sup, "child": child}
        assert value("procman_child_starts_total", **labels) == counts["starts"], (sup, child)
        assert value("procman_child_restarts_total", **labels) == counts["restarts"], (sup, child)
        assert value("procman_child_failures_total", **labels) == counts["failures"], (sup, child)
        for outcome in ("ok", "error", "cancelled", "timeout"):
            got = value("procman_child_exits_total", outcome=outcome, **labels)
            assert got == counts[f"exit:{outcome}"], (sup, child, outcome)
    total_starts = sum(1 for e in out.events if isinstance(e, ProcessStarted))
    assert value("procman_child_starts_total") == total_starts


def check_same_behaviour(observed: Outcome, bare: Outcome) -> None:
    """A deterministic scenario behaves the same with and without observers."""
    assert observed.error_type == bare.error_type, (observed.error, bare.error)
    assert observed.calls == bare.calls
    assert observed.log == bare.log
    assert abs(observed.elapsed - bare.elapsed) < 1e-6 or observed.elapsed == bare.elapsed
