"""MetricsServer /tree: the watched trees as JSON, over loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from helpers import waiting_worker
from prometheus_client import CollectorRegistry
from test_metrics_server import raw, request

from procman import (
    ChildSnapshot,
    ChildState,
    ManagerPhase,
    ProcessManager,
    RuntimeContext,
    SupervisorSnapshot,
    runnable,
)
from procman.builtin import RestartBackoff, RestartSupervisor
from procman_metrics import MetricsServer, PrometheusMetrics
from procman_metrics.tracking import child_ready, tree_document, unready_children


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def by_name(node: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {child["name"]: child for child in node["children"]}


async def fetch_tree(port: int) -> dict[str, Any]:
    resp = await request(port, "/tree")
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/json"
    assert int(resp.headers["content-length"]) == len(resp.body)
    document = json.loads(resp.body)
    assert isinstance(document, dict)
    return document


async def test_tree_of_the_servers_own_tree() -> None:
    async def crash(ctx: RuntimeContext) -> None:
        raise OSError("db down")

    server = MetricsServer(port=0, registry=CollectorRegistry())
    inner = ProcessManager("inner").insert(waiting_worker("a"))
    db = RestartSupervisor(runnable(crash, name="db"), RestartBackoff(initial=60, max=60))
    root = (
        ProcessManager("root", observers=[])
        .insert(waiting_worker("w"))
        .insert(inner)
        .insert(db)
        .insert(server)
    )
    t0 = time.time()
    task = asyncio.create_task(root.process_start())
    port = await asyncio.wait_for(server.wait_bound(), 5)

    def settled() -> bool:
        states = {c.name: c.state for c in root.snapshot().children}
        return states.get("db") is ChildState.BACKOFF and states.get("w") is ChildState.RUNNING

    await until(settled)
    document = await fetch_tree(port)
    elapsed = time.time() - t0
    assert t0 <= document["time"] <= time.time()
    [tree] = document["roots"]
    assert (tree["path"], tree["name"], tree["state"], tree["ready"]) == (
        "root",
        "root",
        "running",
        False,  # db is in backoff
    )
    children = by_name(tree)
    assert set(children) == {"w", "inner", "db", "metrics-server"}
    w = children["w"]
    assert (w["path"], w["state"], w["ready"], w["restarts"], w["supervisor"]) == (
        "root/w",
        "running",
        True,
        0,
        None,
    )
    assert 0 <= w["uptime_seconds"] <= elapsed + 0.01
    assert t0 - 0.01 <= w["started_at"] <= time.time()
    assert (children["db"]["state"], children["db"]["ready"]) == ("backoff", False)
    assert children["db"]["uptime_seconds"] is None  # not running
    nested = children["inner"]["supervisor"]
    assert (nested["path"], nested["state"], nested["ready"]) == ("root/inner", "running", True)
    assert by_name(nested)["a"]["path"] == "root/inner/a"
    assert by_name(nested)["a"]["state"] == "running"

    head = await request(port, "/tree", method="HEAD")
    assert head.status == 200 and head.body == b"" and int(head.headers["content-length"]) > 0
    assert (await request(port, "/tree", method="POST")).status == 405
    assert (await request(port, "/tree?pretty=1")).status == 200
    await root.process_handle().shutdown()
    await asyncio.wait_for(task, 10)


async def test_tree_of_tracked_roots_and_of_nothing() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    server = MetricsServer(port=0, metrics=metrics)
    serving = asyncio.create_task(server.process_start())
    port = await asyncio.wait_for(server.wait_bound(), 5)
    try:
        assert await fetch_tree(port) == {
            "time": pytest.approx(time.time(), abs=5),
            "roots": [],
            "unavailable": [],
        }  # nothing watched
        first = ProcessManager("first", observers=[metrics]).insert(waiting_worker('q"uo\\te'))
        second = ProcessManager("caf\u00e9", observers=[metrics]).insert(waiting_worker("x"))
        metrics.track(first)
        metrics.track(second)
        document = await fetch_tree(port)
        assert [(r["path"], r["state"], r["ready"]) for r in document["roots"]] == [
            ("first", "created", False),
            ("caf\u00e9", "created", False),
        ]
        tasks = [asyncio.create_task(m.process_start()) for m in (first, second)]
        await until(lambda: first.snapshot().ready and second.snapshot().ready)
        roots = (await fetch_tree(port))["roots"]
        assert [r["ready"] for r in roots] == [True, True]
        assert by_name(roots[0])['q"uo\\te']["path"] == 'first/q"uo\\te'
        resp = await raw(port, b"GET /tree HTTP/1.1\r\nHost: x\r\n\r\n")
        assert resp.body.isascii()  # non-ASCII names are \u-escaped JSON
        for manager in (first, second):
            await manager.process_handle().shutdown()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        stopped = (await fetch_tree(port))["roots"]
        assert [r["state"] for r in stopped] == ["stopped", "stopped"]
        assert all(c["uptime_seconds"] is None for r in stopped for c in r["children"])
    finally:
        await server.process_handle().shutdown()
        await asyncio.wait_for(serving, 5)


@pytest.mark.parametrize("ready", [True, False])
def test_child_readiness_is_the_snapshots(ready: bool) -> None:
    child = ChildSnapshot(
        name="c", state=ChildState.RUNNING, started_at=1.0, restart_count=0, ready=ready
    )
    assert child_ready(child) is ready
    snap = SupervisorSnapshot("root", "root", ManagerPhase.RUNNING, (child,))
    document = tree_document([snap], 2.0)
    [root] = document["roots"]
    assert root["ready"] is ready
    assert root["children"][0]["ready"] is ready
    assert root["children"][0]["uptime_seconds"] == 1.0
    assert unready_children(snap) == ([] if ready else ["root/c not ready"])


async def test_a_root_whose_snapshot_fails_is_listed_as_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(ProcessManager):
        def snapshot(self) -> SupervisorSnapshot:
            raise RuntimeError("snapshot failed")

    metrics = PrometheusMetrics(CollectorRegistry())
    trees = [Broken("broken"), ProcessManager("fine")]  # tracked weakly: keep them
    for tree in trees:
        metrics.track(tree)
    server = MetricsServer(port=0, metrics=metrics)
    serving = asyncio.create_task(server.process_start())
    port = await asyncio.wait_for(server.wait_bound(), 5)
    try:
        for _ in range(3):
            document = await fetch_tree(port)
            assert [r["path"] for r in document["roots"]] == ["fine"]
            assert document["unavailable"] == ["broken"]
            ready = await request(port, "/readyz")
            assert ready.status == 503 and b"broken did not answer" in ready.body
        failures = [r for r in caplog.records if "snapshot of" in r.getMessage()]
        assert len(failures) == 1 and failures[0].exc_info  # once, with its traceback
    finally:
        await server.process_handle().shutdown()
        await asyncio.wait_for(serving, 5)
