"""MetricsServer: endpoints on 127.0.0.1 with port 0, supervision, bind errors."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from helpers import waiting_worker
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from procman import (
    ProcessManager,
    RuntimeContext,
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
    with pytest.raises(ValueError, match="port"):
        MetricsServer(port=True)
    with pytest.raises(TypeError, match="metrics"):
        MetricsServer(metrics=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="request_timeout"):
        MetricsServer(request_timeout=0)
    server = MetricsServer()
    assert server.process_name() == "metrics-server"
    assert (server.host, server.requested_port, server.port) == ("127.0.0.1", 9464, None)
    assert "not listening" in repr(server)
