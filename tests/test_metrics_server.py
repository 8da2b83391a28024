"""MetricsServer: endpoints on 127.0.0.1 with port 0, supervision, bind errors."""

from __future__ import annotations

import asyncio
import gzip
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
from helpers import waiting_worker
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from procman import (
    ProcessManager,
    RuntimeContext,
    SupervisorSnapshot,
    __version__,
    runnable,
)
from procman.builtin import RestartBackoff, RestartSupervisor
from procman_metrics import MetricsServer, MetricsServerError, PrometheusMetrics


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


async def request(
    port: int, path: str = "/", method: str = "GET", headers: dict[str, str] | None = None
) -> Response:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return await raw(port, ("\r\n".join(lines) + "\r\n\r\n").encode())


async def raw(port: int, data: bytes) -> Response:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    try:
        writer.write(data)
        await writer.drain()
        payload = await asyncio.wait_for(reader.read(), 10)  # until the server closes
    finally:
        writer.close()
    head, _, body = payload.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Response(int(status_line.split(" ")[1]), headers, body)


worker = waiting_worker


async def until(cond: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


@pytest.fixture
async def standalone() -> AsyncIterator[tuple[MetricsServer, PrometheusMetrics, int]]:
    """A server outside any tree, serving a private registry."""
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    server = MetricsServer(port=0, metrics=metrics, request_timeout=0.5)
    assert server.registry is registry
    task = asyncio.create_task(server.process_start())
    port = await asyncio.wait_for(server.wait_bound(), 5)
    yield server, metrics, port
    await server.process_handle().shutdown()
    await asyncio.wait_for(task, 5)


# -- /metrics ----------------------------------------------------------------------------
async def test_metrics_text_format(
    standalone: tuple[MetricsServer, PrometheusMetrics, int],
) -> None:
    server, metrics, port = standalone
    assert server.port == port and port > 0
    assert server.url == f"http://127.0.0.1:{port}"
    root = ProcessManager("root", observers=[metrics]).insert(worker("w"))
    metrics.track(root)
    task = asyncio.create_task(root.process_start())
    await until(lambda: root.snapshot().ready)
    resp = await request(port, "/metrics")
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert resp.headers["connection"] == "close"
    assert int(resp.headers["content-length"]) == len(resp.body)
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(resp.body.decode())
        for s in fam.samples
    }
    assert values[("procman_build_info", (("version", __version__),))] == 1
    key = ("procman_children", (("state", "running"), ("supervisor", "root")))
    assert values[key] == 1
    assert values[("procman_child_starts_total", (("child", "w"), ("supervisor", "root")))] == 1
    await root.process_handle().shutdown()
    await asyncio.wait_for(task, 5)


async def test_metrics_openmetrics_by_content_negotiation(
    standalone: tuple[MetricsServer, PrometheusMetrics, int],
) -> None:
    _, _, port = standalone
    accept = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5"
    resp = await request(port, "/metrics", headers={"Accept": accept})
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("application/openmetrics-text")
    assert resp.body.endswith(b"# EOF\n")
    names = {fam.name for fam in parse_openmetrics(resp.body.decode())}
    assert {"procman_build_info", "procman_child_starts", "procman_children"} <= names


async def test_head_404_405_and_bad_requests(
    standalone: tuple[MetricsServer, PrometheusMetrics, int],
) -> None:
    _, _, port = standalone
    get = await request(port, "/metrics")
    head = await request(port, "/metrics", method="HEAD")
    assert head.status == 200 and head.body == b""
    assert abs(int(head.headers["content-length"]) - len(get.body)) < 200
    post = await request(port, "/metrics", method="POST")
    assert post.status == 405 and post.headers["allow"] == "GET, HEAD"
    assert (await request(port, "/nope")).status == 404
    assert (await request(port, "/metrics?name[]=x")).status == 200  # query strings ignored
    index = await request(port, "/")
    assert index.status == 200 and b"/metrics" in index.body
    assert (await raw(port, b"NONSENSE\r\n\r\n")).status == 400
    assert (await raw(port, b"GET /x HTTP/1.1\r\nbroken header\r\n\r\n")).status == 400
    too_big = b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n"
    assert (await raw(port, too_big)).status == 431


async def test_silent_client_gets_408_and_early_close_is_harmless(
    standalone: tuple[MetricsServer, PrometheusMetrics, int],
) -> None:
    _, _, port = standalone
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()  # closes without a request
    t0 = time.monotonic()
    slow = await raw(port, b"GET /metrics HTTP/1.1\r\n")  # never finishes its head
    assert slow.status == 408
    assert time.monotonic() - t0 < 5
    assert (await request(port, "/healthz")).status == 200  # still serving


# -- health and readiness ------------------------------------------------------------------
async def test_health_and_readiness_of_tracked_roots(
    standalone: tuple[MetricsServer, PrometheusMetrics, int],
) -> None:
    _, metrics, port = standalone
    # nothing tracked: nothing to be unhealthy about
    assert (await request(port, "/healthz")).status == 200
    assert (await request(port, "/readyz")).status == 200
    root = ProcessManager("root", observers=[metrics]).insert(worker("w"))
    metrics.track(root)
    health = await request(port, "/healthz")
    assert health.status == 503 and b"root" in health.body  # tracked, not started yet
    task = asyncio.create_task(root.process_start())
    await until(lambda: root.snapshot().ready)
    health, ready = await request(port, "/healthz"), await request(port, "/readyz")
    assert (health.status, health.body) == (200, b"ok\n")
    assert (ready.status, ready.body) == (200, b"ready\n")

    async def crash(ctx: RuntimeContext) -> None:
        raise OSError("db down")

    root.add(RestartSupervisor(runnable(crash, name="db"), RestartBackoff(initial=60, max=60)))
    await until(lambda: not root.snapshot().ready)
    ready = await request(port, "/readyz")
    assert ready.status == 503
    assert ready.body == b"not ready: root/db backoff\n"
    assert (await request(port, "/healthz")).status == 200  # alive, just not ready
    await root.process_handle().shutdown()
    await asyncio.wait_for(task, 5)
    assert (await request(port, "/healthz")).status == 503


async def test_in_tree_server_reads_its_own_tree_and_stops_with_it() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    server = MetricsServer(port=0, registry=registry)  # no metrics=: watches its own tree
    nested = ProcessManager("inner").insert(worker("a"))
    root = ProcessManager("root", observers=[metrics]).insert(nested).insert(server)
    task = asyncio.create_task(root.process_start())
    port = await asyncio.wait_for(server.wait_bound(), 5)
    await until(lambda: root.snapshot().ready)
    assert (await request(port, "/readyz")).body == b"ready\n"

    async def slow_start(ctx: RuntimeContext) -> None:
        raise ValueError("not yet")

    nested.add(
        RestartSupervisor(runnable(slow_start, name="late"), RestartBackoff(initial=60, max=60))
    )
    await until(lambda: not root.snapshot().ready)
    ready = await request(port, "/readyz")
    assert (ready.status, ready.body) == (503, b"not ready: root/inner/late backoff\n")
    # an idle connection must not hold the shutdown up
    _, idle_writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.monotonic()
    await root.process_handle().shutdown()
    assert await asyncio.wait_for(task, 10) is None
    assert time.monotonic() - t0 < 3
    idle_writer.close()
    assert server.port is None
    with pytest.raises(OSError):
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    exits = registry.get_sample_value(
        "procman_child_exits_total",
        {"supervisor": "root", "child": "metrics-server", "outcome": "ok"},
    )
    assert exits == 1


async def test_bind_error_fails_the_child_with_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        server = MetricsServer(port=busy, registry=CollectorRegistry())
        root = ProcessManager("root", observers=[]).insert(server).insert(worker("w"))
        waiter = asyncio.create_task(server.wait_bound())
        with pytest.raises(MetricsServerError, match=f"127.0.0.1:{busy}") as info:
            await asyncio.wait_for(root.process_start(), 10)
        assert "could not listen" in str(info.value)
        with pytest.raises(MetricsServerError):
            await waiter
        with pytest.raises(MetricsServerError):
            await server.wait_bound()


async def test_server_can_be_started_again_after_it_stopped() -> None:
    server = MetricsServer(port=0, registry=CollectorRegistry())
    for _ in range(2):
        task = asyncio.create_task(server.process_start())
        port = await asyncio.wait_for(server.wait_bound(), 5)
        assert (await request(port, "/healthz")).status == 200
        await server.process_handle().shutdown()
        await asyncio.wait_for(task, 5)
        assert server.port is None


async def test_cancellation_closes_the_listener() -> None:
    server = MetricsServer(port=0, registry=CollectorRegistry())
    task = asyncio.create_task(server.process_start())
    port = await asyncio.wait_for(server.wait_bound(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(OSError):
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="port"):
        MetricsServer(port=70000)
    with pytest.raises(TypeError, match="port"):
        MetricsServer(port=True)
    with pytest.raises(TypeError, match="metrics"):
        MetricsServer(metrics=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="request_timeout"):
        MetricsServer(request_timeout=0)
    server = MetricsServer()
    assert server.process_name() == "metrics-server"
    assert (server.host, server.requested_port, server.port) == ("127.0.0.1", 9464, None)
    assert "not listening" in repr(server)


# -- issue 9: hostile or broken clients and collectors ----------------------------------
KNOWN_CONTENT_TYPES = re.compile(
    r"^(text/plain|application/openmetrics-text); version=[0-9.]+; charset=utf-8"
    r"(; escaping=(allow-utf-8|underscores|dots|values))?$"
)


@pytest.mark.parametrize(
    "value",
    ["a\nSet-Cookie: evil=1", "a\rb", "a\x00b", "a\x7fb", "1.0.0.\nSet-Cookie: evil=1"],
)
async def test_header_value_with_control_characters_is_a_400(
    standalone: tuple[MetricsServer, PrometheusMetrics, int], value: str
) -> None:
    _, _, port = standalone
    for name in ("X-Anything", "Accept"):
        accept = f"application/openmetrics-text; version={value}" if name == "Accept" else value
        head = f"GET /metrics HTTP/1.1\r\nHost: x\r\n{name}: {accept}\r\n\r\n"
        resp = await raw(port, head.encode("latin-1"))
        assert resp.status == 400
        assert "set-cookie" not in resp.headers


async def test_accept_version_is_never_echoed_into_a_response_header(
    standalone: tuple[MetricsServer, PrometheusMetrics, int],
) -> None:
    _, _, port = standalone
    for accept in (
        "application/openmetrics-text; version=1.0.0.1337",
        "application/openmetrics-text; version=9.9.9-injected",
        "text/plain; version=1.0.0.1337; escaping=allow-utf-8",
        "application/openmetrics-text; version=1.0.0; escaping=values",
    ):
        resp = await request(port, "/metrics", headers={"Accept": accept})
        assert resp.status == 200, accept
        content_type = resp.headers["content-type"]
        assert "1337" not in content_type and "injected" not in content_type
        assert KNOWN_CONTENT_TYPES.match(content_type), content_type


async def test_unusable_accept_falls_back_to_text_and_is_not_logged_per_request(
    standalone: tuple[MetricsServer, PrometheusMetrics, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, _, port = standalone
    caplog.set_level(logging.DEBUG, logger="procman")
    for accept in ("application/openmetrics-text; version=abc",) * 5 + (
        "application/openmetrics-text; version=",
        "application/openmetrics-text; version=1.x",
        ";;;,,,=",
    ):
        resp = await request(port, "/metrics", headers={"Accept": accept})
        assert resp.status == 200, accept
        assert resp.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert b"procman_build_info" in resp.body
    for _ in range(5):
        assert (await raw(port, b"GET /x HTTP/1.1\r\nbroken header\r\n\r\n")).status == 400
    logged = [r for r in caplog.records if r.name.startswith("procman")]
    assert not any(r.exc_info for r in logged)
    assert all(r.levelno < logging.ERROR for r in logged)
    assert len(logged) <= 2  # one per kind of client error and interval


async def test_refused_request_with_a_large_body_gets_its_status_line(
    standalone: tuple[MetricsServer, PrometheusMetrics, int],
) -> None:
    _, _, port = standalone
    body = b"x" * (512 * 1024)
    head = f"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    try:
        writer.write(head.encode() + body)
        payload = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    assert payload.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    assert (await request(port, "/healthz")).status == 200


async def test_a_raising_collector_is_contained(
    standalone: tuple[MetricsServer, PrometheusMetrics, int],
) -> None:
    server, _, port = standalone

    class Flaky(Collector):
        def __init__(self, name: str, broken: bool) -> None:
            self.name, self.broken = name, broken

        def collect(self) -> Iterator[Metric]:
            yield GaugeMetricFamily(f"{self.name}_first", "ok", value=1)
            if self.broken:
                raise RuntimeError("collector down")
            yield GaugeMetricFamily(f"{self.name}_second", "ok", value=2)

    registry = CollectorRegistry()
    early = Flaky("early", broken=False)
    registry.register(early)
    PrometheusMetrics(registry)
    registry.register(Flaky("late", broken=True))  # broken from the first scrape
    server.registry = registry
    resp = await request(port, "/metrics")
    assert resp.status == 200
    names = {f.name for f in text_string_to_metric_families(resp.body.decode())}
    assert {"early_first", "early_second", "procman_build_info"} <= names
    assert "late_second" not in names
    early.broken = True  # a collector that starts failing later hides nothing behind it
    for accept in ("", "application/openmetrics-text; version=1.0.0"):
        resp = await request(port, "/metrics", headers={"Accept": accept})
        assert resp.status == 200
        body = resp.body.decode()
        if accept:
            fams = {f.name for f in parse_openmetrics(body)}
        else:
            fams = {f.name for f in text_string_to_metric_families(body)}
        assert "procman_build_info" in fams and "early_second" not in fams, fams


async def test_a_label_that_cannot_be_encoded_does_not_break_the_scrape(
    standalone: tuple[MetricsServer, PrometheusMetrics, int],
) -> None:
    server, _, port = standalone
    registry = server.registry
    bad = Counter("user_events", "events", ["name"], registry=registry)
    bad.labels("ok").inc()
    bad.labels("caf\udcff").inc()
    for accept in ("", "application/openmetrics-text; version=1.0.0"):
        resp = await request(port, "/metrics", headers={"Accept": accept})
        assert resp.status == 200
        text = resp.body.decode("utf-8")  # valid UTF-8 throughout
        assert "procman_build_info" in text
        assert 'user_events_total{name="ok"} 1.0' in text
        assert "caf" in text  # the bad value is escaped, not dropped


def test_numeric_arguments_are_checked() -> None:
    for bad in (float("nan"), float("inf"), float("-inf"), -1, 0, 10**400):
        with pytest.raises(ValueError, match="request_timeout"):
            MetricsServer(request_timeout=bad)
    for bad_type in ("1", None, True):
        with pytest.raises(TypeError, match="request_timeout"):
            MetricsServer(request_timeout=bad_type)  # type: ignore[arg-type]
    for port in (-1, 65536, 10**400):
        with pytest.raises(ValueError, match="port"):
            MetricsServer(port=port)
    for port_type in ("9464", 9464.0, None):
        with pytest.raises(TypeError, match="port"):
            MetricsServer(port=port_type)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="host"):
        MetricsServer(host=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name"):
        MetricsServer(name="")
    with pytest.raises(TypeError, match="registry"):
        MetricsServer(registry=object())  # type: ignore[arg-type]
    assert MetricsServer(request_timeout=1).process_name() == "metrics-server"


# -- issue 10 section 6: gzip and name[] -----------------------------------------------------
async def test_metrics_honours_accept_encoding_gzip(
    standalone: tuple[MetricsServer, PrometheusMetrics, int],
) -> None:
    _, _, port = standalone
    plain = await request(port, "/metrics")
    assert "content-encoding" not in plain.headers
    zipped = await request(port, "/metrics", headers={"Accept-Encoding": "br, gzip;q=0.8"})
    assert zipped.status == 200
    assert zipped.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in zipped.headers["vary"].lower()
    assert int(zipped.headers["content-length"]) == len(zipped.body)
    assert gzip.decompress(zipped.body) == plain.body
    head = await request(port, "/metrics", method="HEAD", headers={"Accept-Encoding": "gzip"})
    assert head.headers["content-encoding"] == "gzip" and head.body == b""
    for refused in ("gzip;q=0", "identity", "deflate", "x-gzip-but-not"):
        resp = await request(port, "/metrics", headers={"Accept-Encoding": refused})
        assert "content-encoding" not in resp.headers, refused
        assert resp.body == plain.body


async def test_metrics_honours_name_filters(
    standalone: tuple[MetricsServer, PrometheusMetrics, int],
) -> None:
    server, _, port = standalone
    Gauge("user_gauge", "a user's gauge", registry=server.registry).set(3)

    def families(resp: Response) -> set[str]:
        assert resp.status == 200
        return {f.name for f in text_string_to_metric_families(resp.body.decode())}

    everything = families(await request(port, "/metrics"))
    assert len(everything) > 2
    only = await request(port, "/metrics?name[]=procman_build_info")
    assert families(only) == {"procman_build_info"}
    two = await request(port, "/metrics?name%5B%5D=procman_build_info&name[]=user_gauge&other=1")
    assert families(two) == {"procman_build_info", "user_gauge"}
    assert families(await request(port, "/metrics?name[]=no_such_metric")) == set()
    assert families(await request(port, "/metrics?name[]=")) == everything  # no name: all
    crowded = "&".join(["name[]=procman_build_info"] * 300)
    assert (await request(port, f"/metrics?{crowded}")).status == 400
    zipped = await request(
        port, "/metrics?name[]=procman_build_info", headers={"Accept-Encoding": "gzip"}
    )
    assert gzip.decompress(zipped.body) == only.body


async def test_children_gauge_contains_a_failing_tree_and_escapes_bad_paths(
    standalone: tuple[MetricsServer, PrometheusMetrics, int],
) -> None:
    _, metrics, port = standalone

    class Broken(ProcessManager):
        def snapshot(self) -> SupervisorSnapshot:
            raise RuntimeError("snapshot failed")

    class Odd(ProcessManager):
        def snapshot(self) -> SupervisorSnapshot:
            snap = super().snapshot()
            return SupervisorSnapshot("odd\udcff", snap.name, snap.phase, snap.children)

    trees = [Broken("broken"), Odd("odd"), ProcessManager("healthy")]  # tracked weakly
    for tree in trees:
        metrics.track(tree)
    resp = await request(port, "/metrics")
    assert resp.status == 200
    supervisors = {
        s.labels["supervisor"]
        for fam in text_string_to_metric_families(resp.body.decode("utf-8"))
        if fam.name == "procman_children"
        for s in fam.samples
    }
    assert supervisors == {"healthy", "odd\\udcff"}
    # the same through prometheus_client's own exposition (start_http_server users)
    assert b'supervisor="odd\\\\udcff"' in generate_latest(metrics.registry)


async def test_shutdown_with_open_connections_reports_nothing_to_the_loop() -> None:
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, ctx: reported.append(str(ctx.get("message"))))
    try:
        server = MetricsServer(port=0, registry=CollectorRegistry())
        task = asyncio.create_task(server.process_start())
        port = await asyncio.wait_for(server.wait_bound(), 5)
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 200")
        # the answered connection now lingers (the client has not closed it)
        await server.process_handle().shutdown()
        await asyncio.wait_for(task, 5)
        assert await asyncio.wait_for(idle_reader.read(), 5) == b""
        for w in (writer, idle_writer):
            w.close()
        # asyncio's done-callbacks of the connection tasks ran before the server returned
        assert reported == []
    finally:
        loop.set_exception_handler(previous)


async def test_a_connection_accepted_as_the_server_stops_reports_nothing_to_the_loop() -> None:
    # Its task is cancelled before its first step. With asyncio's own connection task
    # (a coroutine callback), asyncio's done callback called task.exception() on it and
    # reported "Exception in callback" (seen on 3.12.1 in the fuzz test's teardown).
    from procman.testing import wait_until
    from procman_metrics._connections import Connections
    from procman_metrics.collector import LogLimiter

    async def respond(request: object) -> bytes:
        raise AssertionError("no request is read")

    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, ctx: reported.append(str(ctx.get("message"))))
    conns = Connections(respond, 5.0, LogLimiter(logging.getLogger("test")))
    listening = await asyncio.start_server(conns.accept, "127.0.0.1", 0)
    ours, theirs = socket.socketpair()
    try:
        reader, writer = await asyncio.open_connection(sock=ours)
        conns.accept(reader, writer)  # accepted...
        await conns.close(listening)  # ...and stopped before its task ran a step
        await wait_until(writer.is_closing, what="the unserved connection closed")
        assert reported == []
    finally:
        loop.set_exception_handler(previous)
        theirs.close()


def test_log_limiter_logs_each_kind_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    from procman_metrics.collector import LogLimiter

    caplog.set_level(logging.INFO, logger="procman.test")
    limiter = LogLimiter(logging.getLogger("procman.test"), interval=3600)
    assert [limiter.log(logging.INFO, "a", "first a") for _ in range(3)] == [True, False, False]
    assert limiter.log(logging.INFO, "b", "first b")
    assert [r.getMessage() for r in caplog.records] == ["first a", "first b"]
    caplog.clear()
    eager = LogLimiter(logging.getLogger("procman.test"), interval=0)
    assert eager.log(logging.INFO, "a", "x %s", 1) and eager.log(logging.INFO, "a", "x %s", 2)
    assert [r.getMessage() for r in caplog.records] == ["x 1", "x 2"]
    assert not limiter.log(logging.DEBUG, "c", "below the level")  # not even counted
