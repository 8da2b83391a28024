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
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import math
import time
import weakref
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Protocol

from procman import (
    ProcessManager,
    ProcmanError,
    Runnable,
    RuntimeGuard,
    RuntimeHandle,
    SupervisorSnapshot,
)
from procman_metrics._deps import PROMETHEUS_HINT
from procman_metrics.collector import Encoder, Exposition, LogLimiter
from procman_metrics.http import (
    MAX_HEAD,
    BadRequest,
    Request,
    discard_input,
    read_request,
    render_response,
)
from procman_metrics.tracking import (
    TrackedRoots,
    current_root,
    is_alive,
    snapshot_of,
    tree_document,
    unready_children,
)

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.exposition import choose_encoder, generate_latest
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        f"procman_metrics.MetricsServer needs prometheus_client: {PROMETHEUS_HINT}"
    ) from exc

__all__ = ["MetricsServer", "MetricsServerError"]

_log = logging.getLogger("procman.metrics")

_ALLOW = (("Allow", "GET, HEAD"),)
_INDEX = b"procman metrics server: /metrics /healthz /readyz /tree\n"
_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"

_DISCARD_LIMIT = 1024 * 1024
"""At most this much of what a client sends after its request head is read and dropped."""
_LINGER = 2.0
"""...for at most this long (seconds) before the connection is closed anyway."""

# Content negotiation: only these media types, versions and escapings are passed
# on to prometheus_client, rebuilt from these constants (never from client text).
_MEDIA_VERSIONS: dict[str, tuple[str, ...]] = {
    "application/openmetrics-text": ("0.0.1", "1.0.0"),
    "text/plain": ("0.0.4", "1.0.0"),
}
_ESCAPINGS = ("allow-utf-8", "underscores", "dots", "values")
_TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


def _canonical_accept(header: str) -> tuple[str, bool]:
    """The usable media ranges of ``header`` rebuilt from constants; and whether any was not."""
    ranges: list[str] = []
    unusable = False
    for part in header.split(",")[:32]:
        media, *params = part.split(";")
        versions = _MEDIA_VERSIONS.get(media.strip().lower())
        if versions is None:  # */* and anything else: the text format in the end
            continue
        media = media.strip().lower()
        words = [media]
        for param in params:
            key, _, value = param.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "version":
                known = next((v for v in versions if v == value), None)
                if known is None:
                    unusable = True
                    break
                words.append(f"version={known}")
            elif key == "escaping":
                escaping = next((e for e in _ESCAPINGS if e == value), None)
                if escaping is not None:
                    words.append(f"escaping={escaping}")
            elif key == "q" and value.rstrip("0").rstrip(".") in ("0", ""):
                break  # q=0: not acceptable
        else:
            ranges.append("; ".join(words))
    return ",".join(ranges), unusable


def negotiate_format(accept: str, log: LogLimiter) -> tuple[Encoder, str]:
    """The encoder and Content-Type for ``accept``: text format for anything not usable."""
    canonical, unusable = _canonical_accept(accept)
    if unusable:
        log.log(
            logging.INFO,
            "accept",
            "procman metrics server: a client sent an Accept header it cannot use; "
            "answered in the text format",
        )
    try:
        encoder, content_type = choose_encoder(canonical)
    except Exception:  # a prometheus_client that rejects what it was given
        return generate_latest, _TEXT_FORMAT
    if not isinstance(content_type, str) or not content_type.isprintable():
        return generate_latest, _TEXT_FORMAT
    return encoder, content_type


def gzip_accepted(accept_encoding: str) -> bool:
    """``Accept-Encoding`` allows gzip (``gzip`` or ``*`` listed without ``q=0``)."""
    for part in accept_encoding.split(",")[:32]:
        coding, *params = part.split(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q" and value.strip().rstrip("0").rstrip(".") in ("0", ""):
                break
        else:
            return True
    return False


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


_Page = tuple[HTTPStatus, bytes, str, tuple[tuple[str, str], ...]]


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
        self.registry: CollectorRegistry = registry
        self._metrics = metrics
        self._name = name
        self._timeout = timeout
        self._log = LogLimiter(_log)
        self._exposition = Exposition(self._log)
        self._guard = RuntimeGuard()
        self._port: int | None = None
        self._error: MetricsServerError | None = None
        self._waiters: list[asyncio.Future[int]] = []
        self._tree: Callable[[], ProcessManager | None] | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._closing = False

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
            self._closing = True
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
            self._closing = False

    # -- HTTP ------------------------------------------------------------------------
    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            response = await self._answer(reader)
            if response is None:
                return
            writer.write(response)
            await asyncio.wait_for(writer.drain(), self._timeout)
            if writer.can_write_eof():
                writer.write_eof()
            await asyncio.wait_for(
                discard_input(reader, _DISCARD_LIMIT), min(self._timeout, _LINGER)
            )
        except (OSError, TimeoutError):  # the client went away (reset, not connected, ...)
            pass
        except asyncio.CancelledError:
            # The server closes its connections this way when it stops. Ending
            # normally spares asyncio's stream callback (3.11), which calls
            # task.exception() on the cancelled task and reports that to the loop.
            if not self._closing:
                raise
        except Exception:
            self._log.log(
                logging.ERROR,
                "connection",
                "procman metrics server: a connection failed",
                exc_info=True,
            )
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            if task is not None:
                self._connections.discard(task)

    async def _answer(self, reader: asyncio.StreamReader) -> bytes | None:
        """The response to the request ``reader`` delivers (None if it sent none)."""
        try:
            request = await asyncio.wait_for(read_request(reader), self._timeout)
        except BadRequest as exc:
            self._log.log(
                logging.INFO,
                f"bad-request-{exc.status.value}",
                "procman metrics server: answered %d to a malformed request (%s)",
                exc.status.value,
                exc,
            )
            return render_response(exc.status, f"{exc}\n".encode())
        except TimeoutError:
            return render_response(HTTPStatus.REQUEST_TIMEOUT, b"request timeout\n")
        if request is None:
            return None
        return await self._respond(request)

    async def _respond(self, request: Request) -> bytes:
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
        tree = self._tree() if self._tree is not None else None
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

    def __repr__(self) -> str:
        where = self.url or f"{self.host}:{self.requested_port} (not listening)"
        return f"<MetricsServer {where}>"
