"""OtelTracingObserver: span names, tree structure, attributes, errors, restarts, modes.

Every test passes its own SDK TracerProvider with an in-memory exporter; the
global provider is never touched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from helpers import Worker, wait_until
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from procman import ProcessControlHandler, ProcessManager, Runnable, RuntimeContext, runnable
from procman.builtin import IdleProcess, RestartBackoff, RestartSupervisor
from procman.events import ProcessStarted, ShutdownRequested
from procman.observe import OtelTracingObserver
from procman.vocabulary import qualified_error_type as error_type


class Boom(Exception):
    """A failure with a non-builtin class (fully qualified error.type)."""


class Spans:
    """An SDK provider exporting to memory, plus queries over the finished spans."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("test")

    @property
    def all(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str, **attrs: object) -> list[ReadableSpan]:
        found = []
        for span in self.all:
            if span.name != name:
                continue
            span_attrs = dict(span.attributes or {})
            if all(span_attrs.get(k.replace("__", ".")) == v for k, v in attrs.items()):
                found.append(span)
        return found

    def run(self, child: str, supervisor: str | None = None) -> ReadableSpan:
        attrs = {"procman__child__name": child}
        if supervisor is not None:
            attrs["procman__supervisor__name"] = supervisor
        spans = self.named("procman.child.run", **attrs)
        assert len(spans) == 1, f"expected one run span of {child}, got {len(spans)}"
        return spans[0]


@pytest.fixture
def spans() -> Iterator[Spans]:
    s = Spans()
    yield s
    s.provider.shutdown()


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def run_for(manager: ProcessManager, seconds: float = 0.1) -> None:
    task = asyncio.ensure_future(manager.process_start())
    await asyncio.sleep(seconds)
    await manager.process_handle().shutdown()
    await asyncio.wait_for(task, 10)


async def test_two_level_tree_structure_and_attributes(spans: Spans) -> None:
    observer = OtelTracingObserver(spans.provider)
    root = ProcessManager("root", observers=[observer])
    root.insert(Worker("a"))
    nested = ProcessManager("nested")
    nested.insert(Worker("b"))
    nested.insert(Worker("c"))
    root.insert(nested)
    await run_for(root)

    a, nested_run = spans.run("a", "root"), spans.run("nested", "root")
    b, c = spans.run("b", "root/nested"), spans.run("c", "root/nested")
    assert parent_id(b) == nested_run.context.span_id
    assert parent_id(c) == nested_run.context.span_id
    assert b.context.trace_id == nested_run.context.trace_id
    assert parent_id(a) is None and parent_id(nested_run) is None  # no app span around the root
    for span, child, sup in [(a, "a", "root"), (b, "b", "root/nested")]:
        assert span.kind is trace.SpanKind.INTERNAL
        assert dict(span.attributes or {}) == {
            "procman.supervisor.name": sup,
            "procman.child.name": child,
            "procman.child.restart_count": 0,
            "procman.child.exit_reason": "ok",
        }
        assert span.status.status_code is StatusCode.UNSET
    assert spans.tracer  # the instrumentation scope is procman's, with its version
    scope = a.instrumentation_scope
    assert scope is not None and scope.name == "procman" and scope.version

    root_shutdown = spans.named("procman.shutdown", procman__supervisor__name="root")
    nested_shutdown = spans.named("procman.shutdown", procman__supervisor__name="root/nested")
    assert len(root_shutdown) == 1 and len(nested_shutdown) == 1
    assert parent_id(nested_shutdown[0]) == root_shutdown[0].context.span_id
    attrs = dict(root_shutdown[0].attributes or {})
    assert attrs["procman.shutdown.reason"] == "requested"
    assert attrs["procman.shutdown.children"] == 2
    assert attrs["procman.shutdown.forced_children"] == 0
    # The shutdown span covers the children's ends (timestamps from the events).
    start, end = root_shutdown[0].start_time, root_shutdown[0].end_time
    assert start is not None and end is not None and start <= end
    assert end - start < 2e9
    assert observer.open_spans == 0


async def test_span_times_follow_the_run(spans: Spans) -> None:
    root = ProcessManager("root", observers=[OtelTracingObserver(spans.provider)])
    root.insert(Worker("a"))
    await run_for(root, 0.3)
    span = spans.run("a")
    assert span.start_time is not None and span.end_time is not None
    assert 0.25e9 <= span.end_time - span.start_time < 5e9


async def test_failure_records_exception_status_and_error_type(spans: Spans) -> None:
    root = ProcessManager("root", observers=[OtelTracingObserver(spans.provider)])
    root.insert(Worker("bad", fail_after=2, exc=Boom("disk on fire")))
    root.insert(Worker("good"))
    with pytest.raises(Boom):
        await asyncio.wait_for(root.process_start(), 10)

    bad = spans.run("bad")
    attrs = dict(bad.attributes or {})
    assert attrs["procman.child.exit_reason"] == "error"
    assert attrs["error.type"] == f"{__name__}.Boom"
    assert bad.status.status_code is StatusCode.ERROR
    assert bad.status.description == f"{__name__}.Boom: disk on fire"
    [event] = [e for e in bad.events if e.name == "exception"]
    assert (event.attributes or {})["exception.type"] in ("Boom", f"{__name__}.Boom")
    assert (event.attributes or {})["exception.message"] == "disk on fire"
    # The sibling stopped by the failure-triggered shutdown is not an error.
    good = spans.run("good")
    assert good.status.status_code is StatusCode.UNSET
    assert "error.type" not in (good.attributes or {})
    [shutdown] = spans.named("procman.shutdown")
    assert (shutdown.attributes or {})["procman.shutdown.reason"] == "failure"


def test_error_type_is_fully_qualified() -> None:
    assert error_type(ValueError("x")) == "ValueError"
    assert error_type(Boom()) == f"{__name__}.Boom"
    assert error_type(asyncio.CancelledError) == "asyncio.exceptions.CancelledError"


class Stubborn(Runnable):
    """Ignores the shutdown request; stops only when cancelled (or never, if ``hang``)."""

    def __init__(self, name: str, hang: bool = False) -> None:
        self.name = name
        self.hang = hang
        self.release = asyncio.Event()

    def process_name(self) -> str:
        return self.name

    def process_handle(self) -> ProcessControlHandler:
        return _Ignore()

    async def process_start(self) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if not self.hang:
                raise
            await self.release.wait()


class _Ignore(ProcessControlHandler):
    async def shutdown(self) -> None:
        pass

    async def reload(self) -> None:
        pass


async def test_forced_cancellation_on_shutdown_is_timeout_not_error(spans: Spans) -> None:
    root = ProcessManager(
        "root", observers=[OtelTracingObserver(spans.provider)], shutdown_grace_period=0.05
    )
    root.insert(Stubborn("stubborn"))
    root.insert(Worker("polite"))
    await run_for(root, 0.05)
    stubborn = spans.run("stubborn")
    assert (stubborn.attributes or {})["procman.child.exit_reason"] == "timeout"
    assert stubborn.status.status_code is StatusCode.UNSET
    assert [e.name for e in stubborn.events] == ["procman.child.stop_timeout"]
    [shutdown] = spans.named("procman.shutdown")
    assert (shutdown.attributes or {})["procman.shutdown.forced_children"] == 1
    [event] = shutdown.events
    assert event.name == "procman.child.stop_timeout"
    assert (event.attributes or {})["procman.child.name"] == "stubborn"


async def test_cancellation_by_a_requested_stop_is_not_an_error(spans: Spans) -> None:
    observer = OtelTracingObserver(spans.provider)
    root = ProcessManager("root", observers=[observer])
    root.insert(IdleProcess("idle"))
    root.insert(Stubborn("sleeper"))
    task = asyncio.ensure_future(root.process_start())
    await wait_until(lambda: observer.open_spans == 2)
    task.cancel()  # the application cancels the tree: children are cancelled at once
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    sleeper = spans.run("sleeper")
    assert (sleeper.attributes or {})["procman.child.exit_reason"] == "cancelled"
    assert "error.type" not in (sleeper.attributes or {})
    assert sleeper.status.status_code is StatusCode.UNSET
    [shutdown] = spans.named("procman.shutdown")
    assert (shutdown.attributes or {})["procman.shutdown.reason"] == "cancelled"
    assert observer.open_spans == 0


async def test_unexpected_cancellation_is_an_error(spans: Spans) -> None:
    async def quitter(ctx: RuntimeContext) -> None:
        await asyncio.sleep(0.01)
        raise asyncio.CancelledError  # nobody asked for this

    root = ProcessManager("root", observers=[OtelTracingObserver(spans.provider)])
    root.insert(runnable(quitter, name="quitter"))
    root.insert(Worker("w"))
    task = asyncio.ensure_future(root.process_start())
    await wait_until(lambda: bool(spans.named("procman.child.run")))
    await root.process_handle().shutdown()
    await asyncio.wait_for(task, 10)
    span = spans.run("quitter")
    attrs = dict(span.attributes or {})
    assert attrs["procman.child.exit_reason"] == "cancelled"
    assert attrs["error.type"] == "asyncio.exceptions.CancelledError"
    assert span.status.status_code is StatusCode.ERROR
    assert spans.run("w").status.status_code is StatusCode.UNSET


async def test_abandoned_child_span_ends_with_error(spans: Spans) -> None:
    observer = OtelTracingObserver(spans.provider)
    hang = Stubborn("hang", hang=True)
    root = ProcessManager(
        "root", observers=[observer], shutdown_grace_period=0.02, cancel_timeout=0.05
    )
    root.insert(hang)
    try:
        await run_for(root, 0.02)
        span = spans.run("hang")
        assert (span.attributes or {})["procman.child.exit_reason"] == "timeout"
        assert (span.attributes or {})["error.type"] == "timeout"
        assert span.status.status_code is StatusCode.ERROR
        assert observer.open_spans == 0
    finally:
        hang.release.set()
        await asyncio.sleep(0.01)


async def test_restart_attempts_are_spans_linked_to_the_runs(spans: Spans) -> None:
    observer = OtelTracingObserver(spans.provider)
    flaky = RestartSupervisor(
        Worker("flaky", fail_after=1), RestartBackoff(initial=0.01, max=0.04, factor=2.0)
    )
    root = ProcessManager("root", observers=[observer])
    root.insert(flaky)
    task = asyncio.ensure_future(root.process_start())
    await wait_until(lambda: len(spans.named("procman.child.restart")) >= 3)
    await root.process_handle().shutdown()
    await asyncio.wait_for(task, 10)

    runs = sorted(
        spans.named("procman.child.run"),
        key=lambda s: (s.attributes or {})["procman.child.restart_count"],
    )
    restarts = sorted(
        spans.named("procman.child.restart"),
        key=lambda s: (s.attributes or {})["procman.restart.attempt"],
    )
    assert [(r.attributes or {})["procman.child.restart_count"] for r in runs] == list(
        range(len(runs))
    )
    attempts = [(r.attributes or {})["procman.restart.attempt"] for r in restarts]
    assert attempts == list(range(1, len(restarts) + 1))
    first = dict(restarts[0].attributes or {})
    assert first["procman.restart.delay"] == pytest.approx(0.01)
    assert first["error.type"] == "RuntimeError"
    assert dict(restarts[1].attributes or {})["procman.restart.delay"] == pytest.approx(0.02)
    for n, restart in enumerate(restarts):
        assert [link.context.span_id for link in restart.links] == [runs[n].context.span_id]
        if n + 1 < len(runs):
            assert [link.context.span_id for link in runs[n + 1].links] == [restart.context.span_id]
    # Runs are siblings, not nested in the previous run (the context was restored).
    assert {parent_id(r) for r in runs} == {None}
    assert all(r.status.status_code is StatusCode.ERROR for r in runs[:-1])
    assert observer.open_spans == 0


async def test_shutdown_during_backoff_ends_the_restart_span(spans: Spans) -> None:
    observer = OtelTracingObserver(spans.provider)
    flaky = RestartSupervisor(Worker("flaky", fail_after=1), RestartBackoff(initial=30, max=30))
    root = ProcessManager("root", observers=[observer])
    root.insert(flaky)
    task = asyncio.ensure_future(root.process_start())
    await wait_until(lambda: observer.open_spans >= 1 and bool(spans.named("procman.child.run")))
    await root.process_handle().shutdown()
    await asyncio.wait_for(task, 10)
    [restart] = spans.named("procman.child.restart")
    assert (restart.attributes or {})["procman.restart.interrupted"] is True
    assert observer.open_spans == 0


async def test_user_span_in_a_child_nests_under_its_run(spans: Spans) -> None:
    seen: dict[str, int] = {}

    async def work(ctx: RuntimeContext) -> None:
        with spans.tracer.start_as_current_span("user.work") as span:
            seen["trace"] = span.get_span_context().trace_id
        await ctx.tick(asyncio.sleep(3600))

    nested = ProcessManager("nested")
    nested.insert(runnable(work, name="deep"))
    root = ProcessManager("root", observers=[OtelTracingObserver(spans.provider)])
    root.insert(runnable(work, name="top"))
    root.insert(nested)
    with spans.tracer.start_as_current_span("app") as app:
        await run_for(root)
    users = spans.named("user.work")
    assert len(users) == 2
    top, deep = spans.run("top"), spans.run("deep")
    parents = {parent_id(u) for u in users}
    assert parents == {top.context.span_id, deep.context.span_id}
    # The whole tree is one trace under the application's span.
    assert {s.context.trace_id for s in spans.all} == {app.get_span_context().trace_id}
    assert parent_id(top) == app.get_span_context().span_id
    # After the tree ended, the caller's context is untouched.
    assert trace.get_current_span() is trace.INVALID_SPAN


async def test_link_mode_short_start_span_and_linked_exit(spans: Spans) -> None:
    parents: list[int] = []

    async def work(ctx: RuntimeContext) -> None:
        with spans.tracer.start_as_current_span("user.work") as span:
            parents.append(span.parent.span_id if span.parent else 0)  # type: ignore[attr-defined]
        await asyncio.sleep(0.05)
        raise Boom("late failure")

    root = ProcessManager(
        "root", observers=[OtelTracingObserver(spans.provider, child_spans="link")]
    )
    root.insert(runnable(work, name="w"))
    root.insert(Worker("ok"))
    task = asyncio.ensure_future(root.process_start())
    # The start span is exported while the child still runs.
    await wait_until(lambda: len(spans.named("procman.child.start")) == 2)
    assert not spans.named("procman.child.exit")
    with pytest.raises(Boom):
        await asyncio.wait_for(task, 10)
    assert not spans.named("procman.child.run")
    [start] = spans.named("procman.child.start", procman__child__name="w")
    [exit_span] = spans.named("procman.child.exit", procman__child__name="w")
    assert start.end_time is not None and start.start_time is not None
    assert start.end_time - start.start_time < 0.05e9
    assert parents == [start.context.span_id]
    assert [link.context.span_id for link in exit_span.links] == [start.context.span_id]
    assert parent_id(exit_span) == parent_id(start)
    attrs = dict(exit_span.attributes or {})
    assert attrs["procman.child.exit_reason"] == "error"
    assert attrs["error.type"] == f"{__name__}.Boom"
    assert attrs["procman.child.duration"] >= 0.04
    assert exit_span.status.status_code is StatusCode.ERROR
    [ok_exit] = spans.named("procman.child.exit", procman__child__name="ok")
    assert (ok_exit.attributes or {})["procman.child.exit_reason"] == "ok"
    assert ok_exit.status.status_code is StatusCode.UNSET


async def test_none_mode_makes_only_operation_spans(spans: Spans) -> None:
    observer = OtelTracingObserver(spans.provider, child_spans="none")
    assert not observer.wants(ProcessStarted)
    assert observer.wants(ShutdownRequested)
    parents: list[object] = []

    async def work(ctx: RuntimeContext) -> None:
        with spans.tracer.start_as_current_span("user.work") as span:
            parents.append(span.parent)  # type: ignore[attr-defined]
        await ctx.tick(asyncio.sleep(3600))

    root = ProcessManager("root", observers=[observer])
    root.insert(runnable(work, name="w"))
    await run_for(root)
    assert {s.name for s in spans.all} == {"user.work", "procman.shutdown"}
    assert parents == [None]


class BadReload(Worker):
    """A worker whose reload handler raises (delivered by awaiting, not by the queue)."""

    def process_handle(self) -> ProcessControlHandler:
        guard = self.guard.handle()

        class Handle(ProcessControlHandler):
            async def shutdown(self) -> None:
                await guard.shutdown()

            async def reload(self) -> None:
                raise RuntimeError("bad config")

        return Handle()


async def test_reload_spans_nest_and_report_errors(spans: Spans) -> None:
    root = ProcessManager("root", observers=[OtelTracingObserver(spans.provider)])
    nested = ProcessManager("nested")
    nested.insert(Worker("n"))
    root.insert(nested)
    root.insert(Worker("w"))
    task = asyncio.ensure_future(root.process_start())
    await root.wait_ready()  # the nested manager and its child run too
    await root.process_handle().reload()
    [root_reload] = spans.named("procman.reload", procman__supervisor__name="root")
    [nested_reload] = spans.named("procman.reload", procman__supervisor__name="root/nested")
    assert parent_id(nested_reload) == root_reload.context.span_id
    assert (root_reload.attributes or {})["procman.reload.result"] == "ok"
    assert (root_reload.attributes or {})["procman.reload.children"] == 2
    assert root_reload.status.status_code is StatusCode.UNSET
    root.add(BadReload("bad"))
    await wait_until(lambda: len(root) == 3)
    await root.process_handle().reload()
    failed = [
        s
        for s in spans.named("procman.reload", procman__supervisor__name="root")
        if s is not root_reload and s.context.span_id != root_reload.context.span_id
    ]
    assert len(failed) == 1
    assert (failed[0].attributes or {})["procman.reload.result"] == "error"
    assert (failed[0].attributes or {})["procman.reload.errors"] == 1
    assert failed[0].status.status_code is StatusCode.ERROR
    await root.process_handle().shutdown()
    await asyncio.wait_for(task, 10)


async def test_many_children_leave_no_open_spans(spans: Spans) -> None:
    observer = OtelTracingObserver(spans.provider)
    root = ProcessManager("root", observers=[observer])
    for _ in range(200):
        root.insert(IdleProcess())
    task = asyncio.ensure_future(root.process_start())
    await wait_until(lambda: observer.open_spans == 200)
    assert len(root) == 200
    await root.process_handle().shutdown()
    await asyncio.wait_for(task, 10)
    assert observer.open_spans == 0
    assert len(spans.named("procman.child.run", procman__child__exit_reason="ok")) == 200


def test_rejects_unknown_child_spans_mode() -> None:
    with pytest.raises(ValueError, match="child_spans"):
        OtelTracingObserver(child_spans="sometimes")  # type: ignore[arg-type]


# -- policy events (issue 11) ------------------------------------------------------------
async def test_ready_is_a_span_event_on_the_run_span(spans: Spans) -> None:
    from procman.events import ProcessReady, ProcessStopped

    observer = OtelTracingObserver(spans.provider)

    async def child() -> None:  # the events of one run, in the child's task
        observer.on_event(ProcessStarted(supervisor="app", child="db", time=1.0))
        observer.on_event(
            ProcessReady(supervisor="app", child="db", time=1.5, duration=0.5, restart_count=0)
        )
        observer.on_event(ProcessStopped(supervisor="app", child="db", time=2.0, duration=1.0))

    await asyncio.ensure_future(child())
    run = spans.run("db", "app")
    (ready,) = [e for e in run.events if e.name == "procman.child.ready"]
    assert dict(ready.attributes or {}) == {
        "procman.child.duration": 0.5,
        "procman.child.restart_count": 0,
    }
    assert observer.open_spans == 0


async def test_restart_decision_is_a_span(spans: Spans) -> None:
    from procman.events import RestartCompleted, RestartRequested

    observer = OtelTracingObserver(spans.provider)
    t = time.monotonic()
    observer.on_event(
        RestartRequested(
            supervisor="app",
            time=t,
            strategy="one_for_all",
            trigger="db",
            children=("db", "consumer", "cache"),
            exception=ConnectionError("reset"),
        )
    )
    assert observer.open_spans == 1
    observer.on_event(
        RestartCompleted(
            supervisor="app",
            time=t + 0.5,
            strategy="one_for_all",
            trigger="db",
            duration=0.5,
            start_time=t,
        )
    )
    assert observer.open_spans == 0
    (span,) = spans.named("procman.restart")
    assert dict(span.attributes or {}) == {
        "procman.supervisor.name": "app",
        "procman.restart.strategy": "one_for_all",
        "procman.restart.trigger": "db",
        "procman.restart.children": 3,
        "procman.restart.result": "ok",
        "error.type": "ConnectionError",
    }
    assert span.end_time is not None and span.start_time is not None
    assert abs((span.end_time - span.start_time) / 1e9 - 0.5) < 0.01


async def test_a_shutdown_ends_the_restart_spans_it_drops(spans: Spans) -> None:
    from procman.events import RestartRequested, RestartScheduled

    observer = OtelTracingObserver(spans.provider)
    observer.on_event(
        RestartRequested(supervisor="app", time=1.0, strategy="one_for_one", trigger="db")
    )
    # a manager times the backoff itself: the event comes from a loop callback, in no task
    done = asyncio.get_running_loop().create_future()

    def scheduled() -> None:
        observer.on_event(
            RestartScheduled(
                supervisor="app", child="db", time=1.0, attempt=1, delay=5, strategy="one_for_one"
            )
        )
        done.set_result(None)

    asyncio.get_running_loop().call_soon(scheduled)
    await done
    assert observer.open_spans == 2
    observer.on_event(ShutdownRequested(supervisor="app", time=2.0, reason="requested", children=1))
    assert observer.open_spans == 1  # the shutdown's own span
    (span,) = spans.named("procman.restart")
    assert dict(span.attributes or {})["procman.restart.result"] == "cancelled"
    (backoff,) = spans.named("procman.child.restart")
    assert dict(backoff.attributes or {})["procman.restart.interrupted"] is True
    assert dict(backoff.attributes or {})["procman.restart.strategy"] == "one_for_one"
