"""The metrics server's pages: /metrics, /healthz, /readyz, /tree and /, routed by path."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Protocol

from prometheus_client import CollectorRegistry

from procman import ProcessManager, SupervisorSnapshot
from procman_metrics._negotiation import gzip_accepted, negotiate_format
from procman_metrics.collector import Exposition, LogLimiter
from procman_metrics.http import BadRequest, Request, render_response
from procman_metrics.tracking import (
    TrackedRoots,
    is_alive,
    snapshot_of,
    tree_document,
    unready_children,
)

_ALLOW = (("Allow", "GET, HEAD"),)
_INDEX = b"procman metrics server: /metrics /healthz /readyz /tree\n"
_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"

_Page = tuple[HTTPStatus, bytes, str, tuple[tuple[str, str], ...]]


class WatchesRoots(Protocol):
    roots: TrackedRoots


class Pages:
    """What the server answers to a request: the pages of ``registry`` and of the watched trees.

    The watched roots are those ``metrics`` tracks when it tracks any, else
    the tree of :attr:`tree` (set by the server each time it starts).
    """

    def __init__(
        self, registry: CollectorRegistry, metrics: WatchesRoots | None, log: LogLimiter
    ) -> None:
        self.registry = registry
        self.tree: Callable[[], ProcessManager | None] | None = None
        self._metrics = metrics
        self._log = log
        self._exposition = Exposition(log)

    async def respond(self, request: Request) -> bytes:
        """The whole response to ``request``."""
        path = request.path
        route = {
            "/metrics": self._metrics_page,
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/tree": self._tree_page,
            "/": self._index,
        }.get(path)
        if route is None:
            return render_response(HTTPStatus.NOT_FOUND, b"not found\n")
        if request.method not in ("GET", "HEAD"):
            return render_response(
                HTTPStatus.METHOD_NOT_ALLOWED, b"method not allowed\n", extra_headers=_ALLOW
            )
        try:
            status, body, content_type, extra = await route(request)
        except BadRequest as exc:
            return render_response(exc.status, f"{exc}\n".encode())
        except Exception:
            self._log.log(
                logging.ERROR,
                f"failed-{path}",
                "procman metrics server: %s %s failed",
                request.method,
                path,
                exc_info=True,
            )
            status, body, content_type, extra = (
                HTTPStatus.INTERNAL_SERVER_ERROR,
                b"internal error\n",
                _TEXT,
                (),
            )
        return render_response(
            status,
            body,
            content_type,
            head_only=request.method == "HEAD",
            extra_headers=extra,
        )

    async def _index(self, request: Request) -> _Page:
        return HTTPStatus.OK, _INDEX, _TEXT, ()

    async def _metrics_page(self, request: Request) -> _Page:
        encoder, content_type = negotiate_format(request.header("accept"), self._log)
        names = request.query.get("name[]")
        compress = gzip_accepted(request.header("accept-encoding"))
        registry, exposition = self.registry, self._exposition

        def render() -> bytes:
            body = exposition.render(registry, encoder, names)
            return gzip.compress(body, compresslevel=1) if compress else body

        body = await asyncio.to_thread(render)
        extra: tuple[tuple[str, str], ...] = (("Vary", "Accept, Accept-Encoding"),)
        if compress:
            extra += (("Content-Encoding", "gzip"),)
        return HTTPStatus.OK, body, content_type, extra

    def _watched(self) -> list[ProcessManager]:
        metrics = self._metrics
        if metrics is not None:
            managers = metrics.roots.managers()
            if managers:
                return managers
        tree = self.tree() if self.tree is not None else None
        return [tree] if tree is not None else []

    async def _snapshot(self, manager: ProcessManager) -> SupervisorSnapshot | None:
        """The snapshot of ``manager``, never blocking this loop on another one.

        None when it timed out or raised (logged at most once a minute).
        """
        loop = manager.loop
        try:
            if loop is None or loop is asyncio.get_running_loop() or not loop.is_running():
                return snapshot_of(manager)
            return await asyncio.to_thread(snapshot_of, manager)
        except Exception:
            self._log.log(
                logging.ERROR,
                "snapshot",
                "procman metrics server: the snapshot of %r failed",
                manager,
                exc_info=True,
            )
            return None

    async def _healthz(self, request: Request) -> _Page:
        dead = [m.path for m in self._watched() if not is_alive(m)]
        if dead:
            body = f"unhealthy: {', '.join(dead)} not running\n".encode(errors="backslashreplace")
            return HTTPStatus.SERVICE_UNAVAILABLE, body, _TEXT, ()
        return HTTPStatus.OK, b"ok\n", _TEXT, ()

    async def _readyz(self, request: Request) -> _Page:
        reasons: list[str] = []
        for manager in self._watched():
            snap = await self._snapshot(manager)
            if snap is None:
                reasons.append(f"{manager.path} did not answer")
            else:
                reasons.extend(unready_children(snap))
        if reasons:
            text = "not ready: " + "; ".join(reasons[:10]) + "\n"
            return HTTPStatus.SERVICE_UNAVAILABLE, text.encode(errors="backslashreplace"), _TEXT, ()
        return HTTPStatus.OK, b"ready\n", _TEXT, ()

    async def _tree_page(self, request: Request) -> _Page:
        snapshots: list[SupervisorSnapshot] = []
        unavailable: list[str] = []
        for manager in self._watched():
            snap = await self._snapshot(manager)
            if snap is not None:
                snapshots.append(snap)
            else:
                unavailable.append(manager.path)
        document = tree_document(snapshots, time.time(), unavailable)
        body = (json.dumps(document, indent=1) + "\n").encode("ascii")  # ensure_ascii
        return HTTPStatus.OK, body, _JSON, ()
