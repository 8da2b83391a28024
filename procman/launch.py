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
* ``gc_freeze=True`` (off by default): once the tree is ready (when
  ``READY=1`` would be sent, with or without systemd) and still running,
  :func:`gc.collect` then :func:`gc.freeze`, logged at INFO with the number
  of objects moved to the permanent generation. Full (generation-2)
  collections then skip the tree's tasks, coroutines and records instead of
  walking them all with the GIL held (at 10k children: 76 ms per full
  collection, event-loop stalls of 105 ms on a ``/metrics`` scrape, 16 ms
  frozen). For trees of thousands of children, or any service whose p99
  latency suffers from full collections. The cost: objects alive at
  start-up are never collected by the cyclic GC, so garbage cycles created
  before readiness stay. When :func:`run` returns, :func:`gc.unfreeze` is
  called if (and only if) this run froze, also after a failure.
* When the root ends, the exit report (:func:`procman.report.exit_report`)
  is logged, and written as a table when stderr is a terminal.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Literal, NoReturn, overload

from procman._launch.logs import TEXT_FORMAT as TEXT_FORMAT
from procman._launch.logs import configure_logging
from procman._launch.options import (
    LogBackend,
    LogFormat,
    OtelMode,
    check_options,
    log_level_number,
    require_extras,
)
from procman._launch.runner import Launch
from procman._launch.systemd import notify_systemd, wait_tree_ready
from procman._launch.target import ROOT_NAME as ROOT_NAME
from procman._launch.target import TargetError, resolve_target
from procman._validate import check_bool
from procman.builtin.signals import RELOADING, TERMINATING

__all__ = [
    "TargetError",
    "log_level_number",
    "notify_systemd",
    "resolve_target",
    "run",
    "wait_tree_ready",
]

_log = logging.getLogger("procman.launch")


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
    gc_freeze: bool = ...,
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
    gc_freeze: bool = ...,
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
    gc_freeze: bool = False,
    exit: bool = False,
) -> int:
    """Run the tree ``target`` until it ends; return (``exit=True``: exit with) its status.

    See the module docstring for what it adds and the exit statuses. Invalid
    options (and unusable ``OTEL_*`` variables with ``otel``) raise
    :class:`ValueError`/:class:`TypeError` before anything runs; a missing
    extra raises :class:`ImportError` naming it. Must be called from the main
    thread, outside any running event loop.
    """
    otel_mode, backend, fmt, grace_s = check_options(
        metrics_port, metrics_host, otel, log, log_format, grace
    )
    level = log_level_number(log_level)
    freeze = check_bool(gc_freeze, "gc_freeze")
    require_extras(otel_mode, backend, fmt, metrics_port)
    if otel_mode != "none":
        from procman.observe.otel_setup import check_environment

        check_environment(otel_mode)
    launch = Launch(
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        otel=otel_mode,
        log=backend,
        grace=grace_s,
        gc_freeze=freeze,
    )
    cleanups: list[Callable[[], None]] = []
    previous = {sig: signal.getsignal(sig) for sig in (*TERMINATING, *RELOADING)}
    configure_logging(backend, fmt, level, cleanups)
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
