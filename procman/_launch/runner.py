"""The launcher's run: build the root, add observers, children and metrics server, run it."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Callable
from typing import Any

from procman._launch.logs import LoggingOnce, loguru_once
from procman._launch.options import LogBackend, OtelMode
from procman._launch.systemd import notify_systemd, wait_tree_ready
from procman._launch.target import TargetError, build_root, describe_target
from procman._launch.watch import LaunchWatch, Receiver, Watch
from procman.builtin.signals import SignalReceiver
from procman.errors import TerminationSignal
from procman.manager import ProcessManager
from procman.observe.logging import LoggingObserver
from procman.observer import Observer
from procman.report import ExitRecorder, exit_report
from procman.snapshot import ManagerPhase

__all__ = ["Launch"]

_log = logging.getLogger("procman.launch")


class Launch(LaunchWatch):
    """One run of a tree, from its target to its exit status."""

    def __init__(
        self,
        *,
        metrics_port: int | None,
        metrics_host: str,
        otel: OtelMode,
        log: LogBackend,
        grace: float | None,
        gc_freeze: bool = False,
    ) -> None:
        super().__init__()
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.otel = otel
        self.loguru = log == "loguru"
        self.grace = grace
        self.gc_freeze = gc_freeze
        self.cleanups: list[Callable[[], None]] = []
        self.server: Any = None

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
                last.append(loguru_once())
        elif not any(isinstance(o, LoggingObserver) for o in app):
            last.append(LoggingOnce())
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
        last.extend((recorder, Watch(self)))
        root.set_observers((*first, *app, *last))
        if self.grace is not None:
            root.shutdown_grace_period = self.grace
        return metrics

    def _add_children(self, root: ProcessManager) -> None:
        root.insert(Receiver(SignalReceiver(), self))

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
        spec = describe_target(target)
        try:
            try:
                self.startup = asyncio.ensure_future(build_root(target, spec))
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
        if running and self.gc_freeze:
            self._freeze_gc()
        if running and notify_systemd("READY=1"):
            _log.debug("notified systemd: READY=1")

    def _freeze_gc(self) -> None:
        """Move every object alive now (the started tree) to the permanent generation.

        Later full collections skip them instead of walking every task, coroutine and
        record of the tree with the GIL held. The run's clean-ups unfreeze again (only
        when this launch froze), so a tree run in-process can be collected once it ended.
        """
        gc.collect()
        gc.freeze()
        self.cleanups.append(gc.unfreeze)
        _log.info(
            "gc.freeze() after start-up: %d objects moved to the permanent generation",
            gc.get_freeze_count(),
        )


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
