"""``procman.run``: run a tree the way ``procman run`` does, from Python.

``asyncio.run``-style: :func:`run` builds (or imports) the tree, adds a
:class:`~procman.builtin.SignalReceiver`, observers and optionally a
metrics server, runs it to the end and returns the exit status::

    import procman

    def build() -> procman.ProcessManager: ...

    if __name__ == "__main__":
        procman.run(build, exit=True)      # or: status = procman.run(build)

Exit status (the same as ``procman run``): 0 on a clean end; 1 on a failure
(its traceback logged once), including an exception raised while importing
the module or calling the factory; 128+N when signal N started the
shutdown; 2 when the target cannot be used (a one-line error on stderr,
no traceback).

``target`` is a :class:`~procman.ProcessManager`, a
:class:`~procman.Runnable` (wrapped in a root manager named ``root``), a
callable (sync or async) returning either, or a ``"module:attr"`` string
naming one of those.

What the launcher does:

* Logging: when the root logger has no handler yet (as
  :func:`logging.basicConfig`), one on stderr, ``log_format="text"`` or
  ``"json"`` (one JSON object per line, see :mod:`procman.observe.jsonlog`),
  at ``log_level``; removed again when :func:`run` returns. ``log="loguru"``
  sends procman's events to loguru (its sink on stderr) instead.
* Observers: the application's observers are kept; the launcher adds its
  logging observer, an :class:`~procman.report.ExitRecorder`, with
  ``otel`` the OpenTelemetry SDK set-up of
  :func:`procman.observe.otel_setup.configure_sdk` (``OTEL_*`` variables)
  and, with ``metrics_port``, a ``PrometheusMetrics`` (an attached one is
  reused) served by a ``MetricsServer`` on ``metrics_host:metrics_port``
  (``0``: a free port, logged).
* What it adds never keeps the tree alive: the signal receiver child does
  not count (once every other child of the root has ended, the tree is shut
  down and the status is 0) and the metrics server runs beside the tree,
  from before its start (a port it cannot bind is a failure, status 1)
  until after the exit report.
* Signals: SIGINT, SIGTERM and SIGQUIT start a graceful shutdown (status
  128+N, one log line, no traceback), from the start to the end of
  :func:`run`; a signal during a shutdown already under way is logged and
  ignored. SIGHUP reloads the running tree (ignored before and after).
  Main thread only.
* systemd: with ``NOTIFY_SOCKET`` set, ``READY=1`` is sent once the tree
  is ready and ``STOPPING=1`` when its shutdown begins.
* When the root ends, the exit report (:func:`procman.report.exit_report`)
  is logged, and written as a table when stderr is a terminal.
"""

from __future__ import annotations

import asyncio
import collections
import importlib
import importlib.util
import inspect
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any, Literal, NoReturn, overload

from procman._validate import seconds
from procman.builtin.signals import RELOADING, TERMINATING, SignalReceiver
from procman.errors import ProcmanError, TerminationSignal
from procman.events import (
    LifecycleEvent,
    ProcessAbandoned,
    ProcessCancelled,
    ProcessFailed,
    ProcessStopped,
    ShutdownRequested,
)
from procman.manager import ProcessManager
from procman.observe.logging import LoggingObserver, describe
from procman.observer import Observer
from procman.report import ExitRecorder, exit_report
from procman.runnable import ProcessControlHandler, Runnable
from procman.snapshot import ChildState, ManagerPhase

__all__ = [
    "TargetError",
    "log_level_number",
    "notify_systemd",
    "resolve_target",
    "run",
    "wait_tree_ready",
]

_log = logging.getLogger("procman.launch")

OtelMode = Literal["console", "otlp", "none"]
LogBackend = Literal["logging", "loguru"]
LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
ROOT_NAME = "root"


class TargetError(ProcmanError, ValueError):
    """The target cannot be used: malformed, not found, or not a tree (exit status 2)."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"cannot run {target!r}: {reason}")
        self.target = target
        self.reason = reason


# -- targets --------------------------------------------------------------------------------


def _is_dotted(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def resolve_target(spec: str) -> object:
    """Import ``"module:attr"`` (``attr`` may be dotted) and return the object.

    Raises :class:`TargetError` when the string is malformed, the module does
    not exist or has no such attribute. Any other exception raised while
    importing the module (a ``ModuleNotFoundError`` for *another* module
    included) propagates: it is the application's failure.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not _is_dotted(module_name) or not _is_dotted(attr):
        raise TargetError(spec, "expected MODULE:ATTR, for example 'myapp.main:build'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise TargetError(spec, f"no module named {missing!r}") from None
        raise
    obj: object = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(spec, f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def _describe_target(target: object) -> str:
    if isinstance(target, str):
        return target
    name = getattr(target, "__qualname__", None) or type(target).__name__
    module = getattr(target, "__module__", None)
    return f"{module}:{name}" if isinstance(module, str) and module else str(name)


_NOT_A_TREE = "a ProcessManager, a Runnable or a (sync or async) factory returning one"


def _as_root(obj: object, spec: str, *, produced: bool) -> ProcessManager | None:
    if isinstance(obj, ProcessManager):
        if obj.phase is not ManagerPhase.CREATED:
            raise TargetError(spec, f"manager {obj.path!r} has already been started")
        return obj
    if isinstance(obj, Runnable):
        return ProcessManager(ROOT_NAME).insert(obj)
    if produced:
        raise TargetError(
            spec, f"the factory returned {type(obj).__name__}, not a ProcessManager or a Runnable"
        )
    return None


async def _build_root(target: object, spec: str) -> ProcessManager:
    obj = resolve_target(target) if isinstance(target, str) else target
    root = _as_root(obj, spec, produced=False)
    if root is not None:
        return root
    if not callable(obj):
        raise TargetError(spec, f"{type(obj).__name__} is not {_NOT_A_TREE}")
    result = obj()
    if inspect.isawaitable(result):
        result = await result
    root = _as_root(result, spec, produced=True)
    assert root is not None
    return root


# -- readiness and systemd ------------------------------------------------------------------


async def wait_tree_ready(root: ProcessManager) -> None:
    """Return once the whole tree is ready (what systemd's ``READY=1`` waits for).

    Returns at once when the tree stopped before it was ready.
    """
    await root.wait_ready()


def notify_systemd(state: str) -> bool:
    """Send ``state`` (``"READY=1"``) to ``$NOTIFY_SOCKET``; False when unset or failing.

    The address may be a path or an abstract socket (``@name``). A failure is
    logged at WARNING, never raised.
    """
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        _log.warning("could not notify systemd (%s): %s", state, exc)
        return False
    return True


# -- observers the launcher adds -------------------------------------------------------------


class _Once:
    """A bounded set of exception objects (exceptions cannot be weakly referenced)."""

    def __init__(self, size: int = 256) -> None:
        self._items: collections.OrderedDict[int, BaseException] = collections.OrderedDict()
        self._size = size

    def add(self, exc: BaseException) -> bool:
        """Remember ``exc``; False when it was already there."""
        key = id(exc)
        if key in self._items and self._items[key] is exc:
            return False
        self._items[key] = exc
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return True

    def __contains__(self, exc: BaseException) -> bool:
        return self._items.get(id(exc)) is exc


class _LoggingOnce(LoggingObserver):
    """The stdlib observer, logging each exception's traceback once.

    A failure travels up the tree (the same exception fails the nested
    managers above the child); the levels above say "traceback logged above".
    """

    def __init__(self) -> None:
        super().__init__()
        self._logged = _Once()

    def on_event(self, event: LifecycleEvent) -> None:
        if isinstance(event, ProcessFailed) and not isinstance(event.exception, TerminationSignal):
            logger = self.logger
            if not logger.isEnabledFor(logging.ERROR):
                return
            if not self._logged.add(event.exception):
                msg, fields = describe(event)
                logger.error("%s (traceback logged above)", msg, extra=fields)
                return
        super().on_event(event)


def _loguru_once() -> Observer:
    """The loguru observer, logging each exception's traceback once (as :class:`_LoggingOnce`)."""
    from procman.observe.loguru import LoguruObserver

    class _LoguruOnce(LoguruObserver):
        def __init__(self) -> None:
            super().__init__()
            self._logged = _Once()

        def on_event(self, event: LifecycleEvent) -> None:
            if (
                isinstance(event, ProcessFailed)
                and not isinstance(event.exception, TerminationSignal)
                and not self._logged.add(event.exception)
            ):
                exc = event.exception
                msg, described = describe(event)
                fields = {key.removeprefix("procman_"): value for key, value in described.items()}
                fields["error"] = f"{type(exc).__name__}: {exc}"
                self.logger.bind(**fields).error(msg + " (traceback logged above)")
                return
            super().on_event(event)

    return _LoguruOnce()


_TERMINAL = (ProcessStopped, ProcessFailed, ProcessCancelled, ProcessAbandoned)
_ALIVE = frozenset(
    (ChildState.STARTING, ChildState.RUNNING, ChildState.STOPPING, ChildState.BACKOFF)
)


class _Watch:
    """Watches the root: children ending, the shutdown beginning, failures seen."""

    def __init__(self, launch: _Launch) -> None:
        self._launch = launch
        self._hooked: set[asyncio.Task[Any]] = set()

    def wants(self, event_type: type[LifecycleEvent]) -> bool:
        return issubclass(event_type, (*_TERMINAL, ShutdownRequested))

    def on_event(self, event: LifecycleEvent) -> None:
        launch = self._launch
        root = launch.root
        if isinstance(event, ProcessFailed):
            # Every failure reaches a logging observer (the launcher's, the application's
            # or loguru's) with its traceback: the final record need not repeat it.
            launch.logged.add(event.exception)
        if root is None or event.supervisor != root.path:
            return
        if isinstance(event, ShutdownRequested):
            launch.shutdown_began()
            return
        # The terminal event comes from the child's own task, before the manager drops the
        # child: check once the task is done (the manager's done callback runs first).
        task = asyncio.current_task()
        if task is not None and root.record_of(task) is not None:
            if task not in self._hooked:
                self._hooked.add(task)
                task.add_done_callback(self._task_done)
        else:
            asyncio.get_running_loop().call_soon(launch.check_app_ended)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._hooked.discard(task)
        self._launch.check_app_ended()

    def __repr__(self) -> str:
        return "procman.launch watcher"


class _Receiver(Runnable):
    """The launcher's SignalReceiver child: it never keeps the tree alive.

    A terminating signal becomes a graceful shutdown of the root requested by
    the launcher, and this child returns: whatever the root's restart policy
    (a TRANSIENT child that raised would be restarted under an intensity), the
    tree then stops.
    """

    def __init__(self, inner: SignalReceiver, launch: _Launch) -> None:
        self.inner = inner
        self._launch = launch

    def process_name(self) -> str:
        return self.inner.process_name()

    def process_handle(self) -> ProcessControlHandler:
        return self.inner.process_handle()

    async def process_start(self) -> None:
        launch = self._launch
        task = asyncio.current_task()
        if task is not None:  # counted while its task runs (a group restart runs it again)
            launch.auxiliary_live += 1
            task.add_done_callback(launch.auxiliary_done)
        asyncio.get_running_loop().call_soon(launch.check_app_ended)
        try:
            await self.inner.process_start()
        except TerminationSignal as exc:
            launch.receiver_signalled(exc.signal)
        finally:
            if self.inner.received is None:
                # The receiver removed its handlers: the launcher's take over again.
                launch.install_signal_handlers()


# -- the launcher -----------------------------------------------------------------------------


class _Launch:
    def __init__(
        self,
        *,
        metrics_port: int | None,
        metrics_host: str,
        otel: OtelMode,
        log: LogBackend,
        grace: float | None,
    ) -> None:
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.otel = otel
        self.loguru = log == "loguru"
        self.grace = grace
        self.root: ProcessManager | None = None
        self.signal: signal.Signals | None = None
        self.logged = _Once()
        self.auxiliary_live = 0
        self.cleanups: list[Callable[[], None]] = []
        self.startup: asyncio.Task[Any] | None = None
        self._stopping_sent = False
        self._ended = False
        self._tasks: set[asyncio.Future[Any]] = set()
        self.server: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # signals ---------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        for sig in TERMINATING:
            loop.add_signal_handler(sig, self._on_signal, sig)
        for sig in RELOADING:
            loop.add_signal_handler(sig, self._on_reload_signal, sig)

    def _on_reload_signal(self, sig: signal.Signals) -> None:
        # The SignalReceiver handles reloads while it runs (an ordered start may start it
        # late): before it runs the launcher reloads the tree; before and after, ignored.
        root = self.root
        if root is None or root.phase is not ManagerPhase.RUNNING or self._stopping():
            _log.warning(
                "%s received while the tree is not running; ignored",
                sig.name,
                extra={"procman_event": "procman.signal.ignored"},
            )
            return
        _log.info("received %s", sig.name, extra={"procman_event": "procman.signal.received"})
        task = asyncio.ensure_future(root.process_handle().reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _stopping(self) -> bool:
        root = self.root
        if self._ended or self.signal is not None:
            return True
        return root is not None and (
            root.shutdown_requested() or root.phase is ManagerPhase.STOPPED
        )

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stopping():
            _log.warning(
                "%s received during the shutdown; ignored",
                sig.name,
                extra={"procman_event": "procman.signal.ignored"},
            )
            return
        _log.info("received %s", sig.name, extra={"procman_event": "procman.signal.received"})
        self.signal = sig
        if self.root is not None:
            self.root.request_shutdown()
        elif self.startup is not None:
            self.startup.cancel()

    # the root's children ---------------------------------------------------------------
    def auxiliary_done(self, task: asyncio.Task[Any]) -> None:
        self.auxiliary_live -= 1
        self.check_app_ended()

    def receiver_signalled(self, sig: signal.Signals) -> None:
        """The SignalReceiver got terminating signal ``sig`` (and logged it)."""
        if self.signal is None:
            self.signal = sig
        if self.root is not None:
            self.root.request_shutdown()

    def check_app_ended(self) -> None:
        """Shut the tree down once no child but the launcher's is alive (O(tree), rare).

        The receiver counts as the launcher's only while its task runs: not yet
        started (an ordered start) or waiting for a restart, it keeps the count
        up, which can only delay this check until it runs, never make it early.
        """
        root = self.root
        if root is None or root.phase is not ManagerPhase.RUNNING:
            return
        alive = sum(1 for child in root.snapshot().children if child.state in _ALIVE)
        if alive - self.auxiliary_live > 0:
            return
        _log.info(
            "every application child of %s has ended; shutting the tree down",
            root.path,
            extra={"procman_event": "procman.run.app_ended", "procman_supervisor": root.path},
        )
        root.request_shutdown()

    def shutdown_began(self) -> None:
        if not self._stopping_sent:
            self._stopping_sent = True
            notify_systemd("STOPPING=1")

    # set-up ------------------------------------------------------------------------------
    def _observers(self, app: tuple[Observer, ...]) -> tuple[list[Observer], list[Observer]]:
        """(first, last): observers to put before and after the application's."""
        first: list[Observer] = []
        last: list[Observer] = []
        if self.otel != "none":
            from procman.observe.otel import OtelTracingObserver
            from procman.observe.otel_setup import configure_sdk

            tracing = configure_sdk(self.otel, self.cleanups)
            if not any(isinstance(o, OtelTracingObserver) for o in app):
                first.extend(tracing)
        if self.loguru:
            from procman.observe.loguru import LoguruObserver

            if not any(isinstance(o, LoguruObserver) for o in app):
                last.append(_loguru_once())
        elif not any(isinstance(o, LoggingObserver) for o in app):
            last.append(_LoggingOnce())
        return first, last

    def _attach(self, root: ProcessManager, recorder: ExitRecorder) -> Any:
        """Add the launcher's observers and grace period to ``root``; return its metrics."""
        own = root.observers
        app = () if own is None else own  # None: the default logging observer, replaced
        first, last = self._observers(app)
        metrics: Any = None
        if self.metrics_port is not None:
            from procman_metrics import PrometheusMetrics

            metrics = next((o for o in app if isinstance(o, PrometheusMetrics)), None)
            if metrics is None:
                metrics = PrometheusMetrics()
                self.cleanups.append(metrics.close)
                last.append(metrics)
        last.extend((recorder, _Watch(self)))
        root.set_observers((*first, *app, *last))
        if self.grace is not None:
            root.shutdown_grace_period = self.grace
        return metrics

    def _add_children(self, root: ProcessManager) -> None:
        root.insert(_Receiver(SignalReceiver(), self))

    async def _serve_metrics(self, root: ProcessManager, metrics: Any) -> None:
        """Start the metrics server beside the tree and wait until it listens.

        It is not a child of the root: it never keeps the tree alive, answers
        ``/healthz`` and ``/metrics`` from before the first child starts (an
        ordered start can take long) until the exit report, and a failure to
        bind ends the run before the tree starts (MetricsServerError).
        """
        from procman_metrics import MetricsServer

        metrics.track(root)
        assert self.metrics_port is not None
        server = MetricsServer(host=self.metrics_host, port=self.metrics_port, metrics=metrics)
        task = asyncio.ensure_future(server.process_start())
        try:
            await server.wait_bound()
        except BaseException:
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
        self.server = (server, task)

    async def _stop_metrics(self) -> None:
        if self.server is None:
            return
        server, task = self.server
        self.server = None
        await server.process_handle().shutdown()
        for result in await asyncio.gather(task, return_exceptions=True):
            if isinstance(result, Exception):
                _log.error("metrics server failed", exc_info=result)

    # the run -------------------------------------------------------------------------------
    async def main(self, target: object) -> int:
        self._loop = asyncio.get_running_loop()
        self.install_signal_handlers()
        spec = _describe_target(target)
        try:
            try:
                self.startup = asyncio.ensure_future(_build_root(target, spec))
                root = await self.startup
            except asyncio.CancelledError:
                if self.signal is None:
                    raise
                return self._signalled(spec)
            finally:
                self.startup = None
            recorder = ExitRecorder()
            metrics = self._attach(root, recorder)
            self._add_children(root)
            if metrics is not None:
                await self._serve_metrics(root, metrics)
        except TargetError as exc:
            sys.stderr.write(f"procman: {exc}\n")
            sys.stderr.flush()
            return 2
        except Exception as exc:
            _log.error(
                "%s failed to start: %s: %s",
                spec,
                type(exc).__name__,
                exc,
                exc_info=exc,
                extra={"procman_event": "procman.run.failed"},
            )
            return 1
        try:
            if self.signal is not None:
                return self._signalled(spec)
            self.root = root
            return await self._run(root, recorder)
        finally:
            await self._stop_metrics()

    def _signalled(self, what: str) -> int:
        assert self.signal is not None
        status = 128 + int(self.signal)
        _log.info(
            "%s stopped by %s (exit status %d)",
            what,
            self.signal.name,
            status,
            extra={"procman_event": "procman.run.signalled", "procman_exit_status": status},
        )
        return status

    async def _run(self, root: ProcessManager, recorder: ExitRecorder) -> int:
        ready = asyncio.ensure_future(self._notify_ready(root))
        status: int
        try:
            await root.process_start()
        except TerminationSignal as sig:
            self.signal = sig.signal
            status = self._signalled(root.path)
        except Exception as exc:
            status = 1
            logged = exc in self.logged
            _log.error(
                "%s failed: %s: %s%s",
                root.path,
                type(exc).__name__,
                exc,
                " (traceback logged above)" if logged else "",
                exc_info=None if logged else exc,
                extra={"procman_event": "procman.run.failed", "procman_exit_status": 1},
            )
        else:
            if self.signal is not None:
                status = self._signalled(root.path)
            else:
                status = 0
                _log.info(
                    "%s ended cleanly",
                    root.path,
                    extra={"procman_event": "procman.run.stopped", "procman_exit_status": 0},
                )
        finally:
            self._ended = True
            ready.cancel()
        # A SignalReceiver that got a signal removes its handlers once the root has stopped,
        # in a task woken with us: let it run, then the launcher's handlers take over.
        await asyncio.sleep(0)
        self.install_signal_handlers()
        self.shutdown_began()
        report = exit_report(recorder)
        if _isatty(sys.stderr):
            sys.stderr.write(report.table())
            sys.stderr.flush()
        return status

    async def _notify_ready(self, root: ProcessManager) -> None:
        try:
            await wait_tree_ready(root)
        except Exception:  # the tree failed before it was ready: nothing to notify
            return
        running = root.phase is ManagerPhase.RUNNING and not root.shutdown_requested()
        if running and notify_systemd("READY=1"):
            _log.debug("notified systemd: READY=1")


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


# -- logging set-up ---------------------------------------------------------------------------


def log_level_number(value: str | int) -> int:
    """A :mod:`logging` level from a name (any case) or a number; ValueError names the choices."""
    if isinstance(value, bool):
        raise TypeError(f"log_level must be a level name or number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip().upper()
        if text.isdigit():
            return int(text)
        level = logging.getLevelNamesMapping().get(text)
        if level is not None:
            return level
        names = ", ".join(("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
        raise ValueError(f"unknown log level {value!r}; use one of {names} or a number")
    raise TypeError(f"log_level must be a level name or number, got {type(value).__name__}")


def _configure_logging(
    log: LogBackend, log_format: LogFormat, level: int, cleanups: list[Callable[[], None]]
) -> None:
    formatter: logging.Formatter
    if log_format == "json":
        from procman.observe.jsonlog import json_formatter

        formatter = json_formatter()
    else:
        formatter = logging.Formatter(TEXT_FORMAT)
    if log == "loguru":
        try:
            from loguru import logger
        except ImportError as exc:
            raise ImportError("log='loguru' needs loguru: pip install 'procman[loguru]'") from exc
        logger.remove()
        sink = logger.add(sys.stderr, level=level, serialize=log_format == "json")
        logger.enable("procman")
        cleanups.append(lambda: logger.remove(sink))
    root = logging.getLogger()
    if root.handlers:
        return  # the application configured logging itself
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    previous = root.level
    root.addHandler(handler)
    root.setLevel(level)

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(previous)

    cleanups.append(undo)


def _require_extras(
    otel: OtelMode, log: LogBackend, log_format: LogFormat, metrics_port: int | None
) -> None:
    """Raise ImportError naming the extra an option needs, before anything runs."""
    needed: list[tuple[str, str, str]] = []
    if metrics_port is not None:
        needed.append(("prometheus_client", "metrics_port", "prometheus"))
    if otel != "none":
        needed.append(("opentelemetry.sdk", f"otel={otel!r}", "otel"))
    if log == "loguru":
        needed.append(("loguru", "log='loguru'", "loguru"))
    if log_format == "json":
        needed.append(("pythonjsonlogger", "log_format='json'", "json"))
    for module, option, extra in needed:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ImportError(f"{option} needs {module}: pip install 'procman[{extra}]'")


# -- the public function ---------------------------------------------------------------------


def _check_options(
    metrics_port: int | None,
    metrics_host: str,
    otel: str | None,
    log: str,
    log_format: str,
    grace: float | None,
) -> tuple[OtelMode, LogBackend, LogFormat, float | None]:
    if metrics_port is not None and (
        isinstance(metrics_port, bool)
        or not isinstance(metrics_port, int)
        or not 0 <= metrics_port <= 65535
    ):
        raise ValueError(f"metrics_port must be an int between 0 and 65535, got {metrics_port!r}")
    if not isinstance(metrics_host, str) or not metrics_host:
        raise ValueError(f"metrics_host must be a non-empty str, got {metrics_host!r}")
    otel = "none" if otel is None else otel
    if otel not in ("console", "otlp", "none"):
        raise ValueError(f"otel must be 'console', 'otlp' or 'none', got {otel!r}")
    if log not in ("logging", "loguru"):
        raise ValueError(f"log must be 'logging' or 'loguru', got {log!r}")
    if log_format not in ("text", "json"):
        raise ValueError(f"log_format must be 'text' or 'json', got {log_format!r}")
    checked_grace = None if grace is None else seconds(grace, "grace")
    return otel, log, log_format, checked_grace  # type: ignore[return-value]


@overload
def run(
    target: object,
    *,
    metrics_port: int | None = ...,
    metrics_host: str = ...,
    otel: OtelMode | None = ...,
    log: LogBackend = ...,
    log_format: LogFormat = ...,
    log_level: str | int = ...,
    grace: float | None = ...,
    exit: Literal[False] = ...,
) -> int: ...


@overload
def run(
    target: object,
    *,
    metrics_port: int | None = ...,
    metrics_host: str = ...,
    otel: OtelMode | None = ...,
    log: LogBackend = ...,
    log_format: LogFormat = ...,
    log_level: str | int = ...,
    grace: float | None = ...,
    exit: Literal[True],
) -> NoReturn: ...


def run(
    target: object,
    *,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    otel: OtelMode | None = "none",
    log: LogBackend = "logging",
    log_format: LogFormat = "text",
    log_level: str | int = "INFO",
    grace: float | None = None,
    exit: bool = False,
) -> int:
    """Run the tree ``target`` until it ends; return (``exit=True``: exit with) its status.

    See the module docstring for what it adds and the exit statuses. Invalid
    options (and unusable ``OTEL_*`` variables with ``otel``) raise
    :class:`ValueError`/:class:`TypeError` before anything runs; a missing
    extra raises :class:`ImportError` naming it. Must be called from the main
    thread, outside any running event loop.
    """
    otel_mode, backend, fmt, grace_s = _check_options(
        metrics_port, metrics_host, otel, log, log_format, grace
    )
    level = log_level_number(log_level)
    _require_extras(otel_mode, backend, fmt, metrics_port)
    if otel_mode != "none":
        from procman.observe.otel_setup import check_environment

        check_environment(otel_mode)
    launch = _Launch(
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        otel=otel_mode,
        log=backend,
        grace=grace_s,
    )
    cleanups: list[Callable[[], None]] = []
    previous = {sig: signal.getsignal(sig) for sig in (*TERMINATING, *RELOADING)}
    _configure_logging(backend, fmt, level, cleanups)
    try:
        with asyncio.Runner() as runner:
            try:
                status = runner.run(launch.main(target))
            finally:
                for cleanup in reversed(launch.cleanups):
                    try:
                        cleanup()
                    except Exception:
                        _log.exception("a clean-up step failed")
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)
        for cleanup in reversed(cleanups):
            cleanup()
    if exit:
        raise SystemExit(status)
    return status
