"""MetricsServer: a supervised Runnable serving /metrics, /healthz, /readyz and /tree.

Guarantees:

* It is an ordinary procman child: it listens while it runs, stops listening
  and closes open connections when it receives a shutdown (or is
  cancelled), and can be started again.
* A failure to bind (address in use, permission denied) makes the child fail
  with :class:`MetricsServerError` naming the address, like any child failure.
* ``/metrics`` serves the registry in the Prometheus text format, or in
  OpenMetrics (with exemplars) when the ``Accept`` header asks for
  ``application/openmetrics-text``; gzip-compressed when ``Accept-Encoding``
  allows it; only the samples named by ``name[]`` query parameters when there
  are any. It is rendered (and compressed) in a worker thread, so a large
  exposition does not hold the event loop for its whole duration; tree
  snapshots are still taken on the loop (see :mod:`procman_metrics.tracking`).
  An ``Accept`` it cannot use falls back to the text format; a collector that
  raises or a label that is not UTF-8 is contained (see
  :class:`~procman_metrics.collector.Exposition`), never a 500 for the page.
* ``/tree`` serves the watched trees as JSON (see
  :func:`~procman_metrics.tracking.tree_document`).
* ``/healthz`` is 200 while every watched root manager is alive, ``/readyz``
  200 while every watched tree is ready (all children started, none in
  backoff); 503 otherwise, with a short plain-text reason. The watched roots
  are those tracked by ``metrics`` when it tracks any, else the tree the
  server itself runs in; with neither, both answer 200.
* One request per connection (``Connection: close``); GET and HEAD only
  (405 otherwise), 404 for unknown paths, 400 for a malformed head (a control
  character in any header included), every request bounded by
  ``request_timeout``. No client input is ever copied into a response header.
  After the response the write side is shut down and what the client still
  sends is read and dropped (up to 1 MiB, for at most 2 s), so a refused
  request with a body gets its status line rather than a reset. Client errors
  are logged at most once a minute per kind, without traceback. Only stdlib
  asyncio, no web framework.

The parts: the pages and their routing (:mod:`procman_metrics._pages`),
content negotiation (:mod:`procman_metrics._negotiation`), the connections
(:mod:`procman_metrics._connections`), HTTP parsing and rendering
(:mod:`procman_metrics.http`); this module keeps the server's lifecycle.
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref

from procman import ProcmanError, Runnable, RuntimeGuard, RuntimeHandle
from procman_metrics._deps import PROMETHEUS_HINT
from procman_metrics.collector import LogLimiter
from procman_metrics.http import MAX_HEAD
from procman_metrics.tracking import TrackedRoots, current_root

try:
    from prometheus_client import REGISTRY, CollectorRegistry
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        f"procman_metrics.MetricsServer needs prometheus_client: {PROMETHEUS_HINT}"
    ) from exc

from procman_metrics._connections import Connections

# negotiate_format and gzip_accepted stay importable from here, where they were defined before.
from procman_metrics._negotiation import gzip_accepted as gzip_accepted
from procman_metrics._negotiation import negotiate_format as negotiate_format
from procman_metrics._pages import Pages, WatchesRoots

__all__ = ["MetricsServer", "MetricsServerError"]

_log = logging.getLogger("procman.metrics")


def _check_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    try:
        seconds = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return seconds


class MetricsServerError(ProcmanError):
    """The metrics server could not listen on its address."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        reason = cause.strerror or str(cause)
        super().__init__(f"MetricsServer could not listen on {host}:{port}: {reason}")
        self.host = host
        self.port = port
        self.errno = cause.errno


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
        metrics: WatchesRoots | None = None,
        *,
        name: str = "metrics-server",
        request_timeout: float = 10.0,
    ) -> None:
        if not isinstance(host, str):
            raise TypeError(f"host must be a str, got {host!r}")
        if not host:
            raise ValueError("host must not be empty")
        if isinstance(port, bool) or not isinstance(port, int):
            raise TypeError(f"port must be an int, got {port!r}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {port!r}")
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {name!r}")
        if not name:
            raise ValueError("name must not be empty")
        timeout = _check_number("request_timeout", request_timeout)
        if registry is not None and not isinstance(registry, CollectorRegistry):
            raise TypeError(
                f"registry must be a prometheus_client CollectorRegistry, "
                f"got {type(registry).__name__}"
            )
        if metrics is not None and not isinstance(getattr(metrics, "roots", None), TrackedRoots):
            raise TypeError(
                f"metrics must be a PrometheusMetrics or OtelMetrics, got {type(metrics).__name__}"
            )
        self.host = host
        self.requested_port = port
        if registry is None:
            registry = getattr(metrics, "registry", None) or REGISTRY
        self._name = name
        self._log = LogLimiter(_log)
        self._pages = Pages(registry, metrics, self._log)
        self._connections = Connections(self._pages.respond, timeout, self._log)
        self._guard = RuntimeGuard()
        self._port: int | None = None
        self._error: MetricsServerError | None = None
        self._waiters: list[asyncio.Future[int]] = []

    @property
    def registry(self) -> CollectorRegistry:
        """The registry ``/metrics`` serves (may be replaced while serving)."""
        return self._pages.registry

    @registry.setter
    def registry(self, registry: CollectorRegistry) -> None:
        self._pages.registry = registry

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
        self._pages.tree = weakref.ref(root) if root is not None else None
        try:
            server = await asyncio.start_server(
                self._connections.accept, self.host, self.requested_port, limit=MAX_HEAD
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
            await self._connections.close(server)

    def __repr__(self) -> str:
        where = self.url or f"{self.host}:{self.requested_port} (not listening)"
        return f"<MetricsServer {where}>"
