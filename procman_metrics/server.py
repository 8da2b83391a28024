"""MetricsServer: a supervised Runnable serving /metrics, /healthz and /readyz.

Guarantees:

* It is an ordinary procman child: it listens while it runs, stops listening
  and closes open connections when it receives a shutdown (or is
  cancelled), and can be started again.
* A failure to bind (address in use, permission denied) makes the child fail
  with :class:`MetricsServerError` naming the address, like any child failure.
* ``/metrics`` serves the registry in the Prometheus text format, or in
  OpenMetrics (with exemplars) when the ``Accept`` header asks for
  ``application/openmetrics-text``. It is rendered in a worker thread, so a
  large exposition does not hold the event loop for its whole duration; tree
  snapshots are still taken on the loop (see :mod:`procman_metrics.tracking`).
* ``/healthz`` is 200 while every watched root manager is alive, ``/readyz``
  200 while every watched tree is ready (all children started, none in
  backoff); 503 otherwise, with a short plain-text reason. The watched roots
  are those tracked by ``metrics`` when it tracks any, else the tree the
  server itself runs in; with neither, both answer 200.
* One request per connection (``Connection: close``); GET and HEAD only
  (405 otherwise), 404 for unknown paths, every request bounded by
  ``request_timeout``. Only stdlib asyncio, no web framework.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Protocol

from procman import ProcessManager, ProcmanError, Runnable, RuntimeGuard, RuntimeHandle
from procman_metrics._deps import PROMETHEUS_HINT
from procman_metrics.http import MAX_HEAD, BadRequest, Request, read_request, render_response
from procman_metrics.tracking import (
    TrackedRoots,
    current_root,
    is_alive,
    snapshot_of,
    unready_children,
)

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.exposition import choose_encoder
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        f"procman_metrics.MetricsServer needs prometheus_client: {PROMETHEUS_HINT}"
    ) from exc

__all__ = ["MetricsServer", "MetricsServerError"]

_log = logging.getLogger("procman.metrics")

_ALLOW = (("Allow", "GET, HEAD"),)
_INDEX = b"procman metrics server: /metrics /healthz /readyz\n"


class MetricsServerError(ProcmanError):
    """The metrics server could not listen on its address."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        reason = cause.strerror or str(cause)
        super().__init__(f"MetricsServer could not listen on {host}:{port}: {reason}")
        self.host = host
        self.port = port
        self.errno = cause.errno


class _WatchesRoots(Protocol):
    roots: TrackedRoots


class MetricsServer(Runnable):
    """Serves the metrics of ``registry`` and the health of the tree over HTTP.

    ``registry`` defaults to ``metrics.registry`` when ``metrics`` (a
    :class:`~procman_metrics.PrometheusMetrics`) is given, else to
    ``prometheus_client.REGISTRY``. ``port=0`` picks a free port: read it from
    :attr:`port` after :meth:`wait_bound`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9464,
        registry: CollectorRegistry | None = None,
        metrics: _WatchesRoots | None = None,
        *,
        name: str = "metrics-server",
        request_timeout: float = 10.0,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise TypeError(f"host must be a non-empty str, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int between 0 and 65535, got {port!r}")
        if request_timeout <= 0:
            raise ValueError(f"request_timeout must be > 0, got {request_timeout!r}")
        if metrics is not None and not isinstance(getattr(metrics, "roots", None), TrackedRoots):
            raise TypeError(
                f"metrics must be a PrometheusMetrics or OtelMetrics, got {type(metrics).__name__}"
            )
        self.host = host
        self.requested_port = port
        if registry is None:
            registry = getattr(metrics, "registry", None) or REGISTRY
        self.registry: CollectorRegistry = registry
        self._metrics = metrics
        self._name = name
        self._timeout = float(request_timeout)
        self._guard = RuntimeGuard()
        self._port: int | None = None
        self._error: MetricsServerError | None = None
        self._waiters: list[asyncio.Future[int]] = []
        self._tree: Callable[[], ProcessManager | None] | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    # -- Runnable --------------------------------------------------------------------
    def process_name(self) -> str:
        return self._name

    def process_handle(self) -> RuntimeHandle:
        return self._guard.handle()

    @property
    def port(self) -> int | None:
        """The port actually listened on while serving (None otherwise)."""
        return self._port

    @property
    def url(self) -> str | None:
        """``http://host:port`` while serving (None otherwise)."""
        if self._port is None:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    async def wait_bound(self) -> int:
        """Wait until the server listens and return its port.

        Raises :class:`MetricsServerError` if the current run failed to bind.
        """
        if self._port is not None:
            return self._port
        if self._error is not None:
            raise self._error
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return await waiter

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if self._error is not None:
                waiter.set_exception(self._error)
            elif self._port is not None:
                waiter.set_result(self._port)

    async def process_start(self) -> None:
        """Listen until a shutdown arrives; raise MetricsServerError if binding fails."""
        self._error = None
        root = current_root()
        self._tree = weakref.ref(root) if root is not None else None
        try:
            server = await asyncio.start_server(
                self._on_client, self.host, self.requested_port, limit=MAX_HEAD
            )
        except OSError as exc:
            self._error = MetricsServerError(self.host, self.requested_port, exc)
            self._notify()
            raise self._error from exc
        try:
            self._port = int(server.sockets[0].getsockname()[1])
            self._notify()
            _log.info("procman metrics server listening on %s", self.url)
            await self._guard.block_until_shutdown()
        finally:
            self._port = None
            server.close()
            for task in list(self._connections):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    asyncio.gather(
                        server.wait_closed(), *self._connections, return_exceptions=True
                    ),
                    timeout=2.0,
                )
            self._connections.clear()

    # -- HTTP ------------------------------------------------------------------------
    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            try:
                request = await asyncio.wait_for(read_request(reader), self._timeout)
            except BadRequest as exc:
                response = render_response(exc.status, f"{exc}\n".encode())
            except TimeoutError:
                response = render_response(HTTPStatus.REQUEST_TIMEOUT, b"request timeout\n")
            else:
                if request is None:
                    return
                response = await self._respond(request)
            writer.write(response)
            await asyncio.wait_for(writer.drain(), self._timeout)
        except (ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            if task is not None:
                self._connections.discard(task)

    async def _respond(self, request: Request) -> bytes:
        path = request.path
        route = {
            "/metrics": self._metrics_page,
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/": self._index,
        }.get(path)
        if route is None:
            return render_response(HTTPStatus.NOT_FOUND, b"not found\n")
        if request.method not in ("GET", "HEAD"):
            return render_response(
                HTTPStatus.METHOD_NOT_ALLOWED, b"method not allowed\n", extra_headers=_ALLOW
            )
        try:
            status, body, content_type = await route(request)
        except Exception:
            _log.exception("procman metrics server: %s %s failed", request.method, path)
            status, body, content_type = (
                HTTPStatus.INTERNAL_SERVER_ERROR,
                b"internal error\n",
                "text/plain; charset=utf-8",
            )
        return render_response(status, body, content_type, head_only=request.method == "HEAD")

    async def _index(self, request: Request) -> tuple[HTTPStatus, bytes, str]:
        return HTTPStatus.OK, _INDEX, "text/plain; charset=utf-8"

    async def _metrics_page(self, request: Request) -> tuple[HTTPStatus, bytes, str]:
        encoder, content_type = choose_encoder(request.header("accept"))
        body = await asyncio.to_thread(encoder, self.registry)
        return HTTPStatus.OK, body, content_type

    def _watched(self) -> list[ProcessManager]:
        metrics = self._metrics
        if metrics is not None:
            managers = metrics.roots.managers()
            if managers:
                return managers
        tree = self._tree() if self._tree is not None else None
        return [tree] if tree is not None else []

    async def _healthz(self, request: Request) -> tuple[HTTPStatus, bytes, str]:
        dead = [m.path for m in self._watched() if not is_alive(m)]
        if dead:
            body = f"unhealthy: {', '.join(dead)} not running\n".encode()
            return HTTPStatus.SERVICE_UNAVAILABLE, body, "text/plain; charset=utf-8"
        return HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8"

    async def _readyz(self, request: Request) -> tuple[HTTPStatus, bytes, str]:
        reasons: list[str] = []
        for manager in self._watched():
            snap = snapshot_of(manager)
            if snap is None:
                reasons.append(f"{manager.path} did not answer")
            else:
                reasons.extend(unready_children(snap))
        if reasons:
            body = ("not ready: " + "; ".join(reasons[:10]) + "\n").encode()
            return HTTPStatus.SERVICE_UNAVAILABLE, body, "text/plain; charset=utf-8"
        return HTTPStatus.OK, b"ready\n", "text/plain; charset=utf-8"

    def __repr__(self) -> str:
        where = self.url or f"{self.host}:{self.requested_port} (not listening)"
        return f"<MetricsServer {where}>"
