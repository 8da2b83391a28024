"""The ``procman`` command line.

* ``procman run MODULE:ATTR``: run an application's tree (see :mod:`procman.launch`);
  every option can also come from a ``PROCMAN_*`` environment variable (the flag wins).
* ``procman demo``: run an observable demo tree.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from procman._version import __version__
from procman.builtin.signals import TERMINATING
from procman.errors import TerminationSignal
from procman.observer import Observer

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="procman", description=__doc__)
    parser.add_argument("--version", action="version", version=f"procman {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a supervised demo tree until Ctrl-C or --duration")
    demo.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    demo.add_argument("--metrics-port", type=int, default=9464, help="0 disables the server")
    demo.add_argument("--metrics-host", default="127.0.0.1")
    demo.add_argument("--otel", choices=("console", "otlp", "none"), default="none")
    demo.add_argument("--log", choices=("logging", "loguru"), default="logging")
    demo.add_argument("--log-level", default="INFO")
    run = sub.add_parser(
        "run",
        help="run the tree MODULE:ATTR until it ends or a signal stops it",
        description="Run MODULE:ATTR (a ProcessManager, a Runnable, or a sync/async factory "
        "returning one) with signals, logs, metrics and exit status handled. Each option "
        "can also be set by the environment variable shown; the flag wins.",
        epilog="exit status: 0 clean end, 1 failure, 128+N after signal N, 2 unusable target",
    )
    run.add_argument("target", metavar="MODULE:ATTR")
    run.set_defaults(subparser=run)
    for flag, var, kwargs in _RUN_OPTIONS:
        run.add_argument(flag, default=None, help=f"{kwargs['help']} (${var})", **kwargs["arg"])
    return parser


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise ValueError(f"{text!r} is not a port number (0-65535; 0 picks a free port)")
    return value


def _grace(text: str) -> float:
    from procman._validate import seconds

    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    return seconds(value, "grace")


def _host(text: str) -> str:
    if not text.strip():
        raise ValueError("the host must not be empty")
    return text.strip()


def _level(text: str) -> str:
    from procman.launch import log_level_number

    log_level_number(text)
    return text.strip().upper()


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{text!r} is not one of {', '.join(_TRUE + _FALSE)}")


def _choice(*names: str) -> Callable[[str], str]:
    def check(text: str) -> str:
        value = text.strip().lower()
        if value not in names:
            raise ValueError(f"{text!r} is not one of {', '.join(names)}")
        return value

    return check


# (flag, environment variable, {"help": ..., "arg": argparse kwargs}); the converters
# are applied to the flag or, when it is absent, the variable.
_RUN_OPTIONS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "--metrics-port",
        "PROCMAN_METRICS_PORT",
        {
            "help": "serve /metrics, /healthz, /readyz on PORT (0: a free port)",
            "arg": {"metavar": "PORT"},
        },
    ),
    (
        "--metrics-host",
        "PROCMAN_METRICS_HOST",
        {"help": "bind address (127.0.0.1)", "arg": {"metavar": "HOST"}},
    ),
    (
        "--otel",
        "PROCMAN_OTEL",
        {
            "help": "OpenTelemetry SDK set-up from OTEL_* (none)",
            "arg": {"metavar": "console|otlp|none"},
        },
    ),
    (
        "--log",
        "PROCMAN_LOG",
        {"help": "log backend (logging)", "arg": {"metavar": "logging|loguru"}},
    ),
    (
        "--log-format",
        "PROCMAN_LOG_FORMAT",
        {"help": "text or one JSON object per line (text)", "arg": {"metavar": "text|json"}},
    ),
    ("--log-level", "PROCMAN_LOG_LEVEL", {"help": "log level (INFO)", "arg": {"metavar": "LEVEL"}}),
    (
        "--grace",
        "PROCMAN_GRACE",
        {"help": "override the root's shutdown grace period", "arg": {"metavar": "SECONDS"}},
    ),
    (
        "--gc-freeze",
        "PROCMAN_GC_FREEZE",
        {
            "help": "gc.collect() and gc.freeze() once the tree is ready (off)",
            "arg": {"action": "store_const", "const": "1"},
        },
    ),
]
_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "metrics_port": _port,
    "metrics_host": _host,
    "otel": _choice("console", "otlp", "none"),
    "log": _choice("logging", "loguru"),
    "log_format": _choice("text", "json"),
    "log_level": _level,
    "grace": _grace,
    "gc_freeze": _bool,
}
_DEFAULTS: dict[str, Any] = {
    "metrics_port": None,
    "metrics_host": "127.0.0.1",
    "otel": "none",
    "log": "logging",
    "log_format": "text",
    "log_level": "INFO",
    "grace": None,
    "gc_freeze": False,
}


def _run_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """The run options: flag, else environment variable, else default; errors exit 2."""
    options: dict[str, Any] = {}
    for flag, var, _ in _RUN_OPTIONS:
        key = flag[2:].replace("-", "_")
        raw = getattr(args, key)
        source = flag
        if raw is None:
            raw = os.environ.get(var)
            source = f"${var}"
            if raw is None or not raw.strip():
                options[key] = _DEFAULTS[key]
                continue
        try:
            options[key] = _CONVERTERS[key](raw)
        except (TypeError, ValueError) as exc:
            parser.error(f"{source}={raw!r}: {exc}")
    return options


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from procman.launch import run

    options = _run_options(parser, args)
    # Like `python -m` and uvicorn: MODULE is looked up from the current directory too.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        status: int = run(args.target, **options)
        return status
    except (ImportError, ValueError) as exc:  # a missing extra, unusable OTEL_* variables
        parser.error(str(exc))


async def _run_demo(args: argparse.Namespace) -> int:
    from procman.demo import build_demo_tree

    observers: list[Observer] = []
    cleanups: list[Callable[[], None]] = []
    extra = []
    if args.otel != "none":  # first, so every log record and exemplar carries the span
        from procman.observe.otel_setup import configure_sdk

        observers.extend(configure_sdk(args.otel, cleanups))
    if args.log == "loguru":
        from procman.observe.loguru import LoguruObserver

        observers.append(LoguruObserver())
    else:
        from procman.observe.logging import LoggingObserver

        observers.append(LoggingObserver())
    if args.metrics_port:
        from procman_metrics import MetricsServer, PrometheusMetrics

        metrics = PrometheusMetrics()
        observers.append(metrics)
        server = MetricsServer(host=args.metrics_host, port=args.metrics_port)
        extra.append(server)
    root = build_demo_tree(observers=observers, extra=extra)
    if args.metrics_port:
        metrics.track(root)
        _say(
            f"metrics: http://{args.metrics_host}:{args.metrics_port}/metrics "
            "(point a Prometheus scrape job at it; import dashboards/procman.json in Grafana "
            "and load dashboards/alerts.yml + dashboards/recording.yml as rules)"
        )
    # Until the tree's SignalReceiver runs, a terminating signal still stops the demo
    # gracefully with 128 + N (the receiver replaces these handlers when it starts).
    loop = asyncio.get_running_loop()
    early: list[signal.Signals] = []

    def on_early_signal(sig: signal.Signals) -> None:
        if not early:
            early.append(sig)
            root.request_shutdown()

    for sig in TERMINATING:
        loop.add_signal_handler(sig, on_early_signal, sig)
    task = asyncio.ensure_future(root.process_start())
    try:
        await root.wait_ready()
        if not task.done() and not early:
            _say("demo: running (Ctrl-C or SIGTERM stops it)")
        if args.duration is not None:
            done, _ = await asyncio.wait({task}, timeout=args.duration)
            if not done:
                _say(f"demo: --duration {args.duration:g}s elapsed, shutting down")
                await root.process_handle().shutdown()
        await task
    except TerminationSignal as exc:
        _say(f"demo: stopped by {exc.signal.name} (exit status {exc.exit_code})")
        return exc.exit_code
    finally:
        for cleanup in reversed(cleanups):
            with contextlib.suppress(Exception):
                cleanup()
    if early:
        _say(f"demo: stopped by {early[0].name} (exit status {128 + early[0]})")
        return 128 + early[0]
    _say("demo: stopped cleanly")
    return 0


def _say(text: str) -> None:
    print(text, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``procman`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args.subparser, args)
    if args.command == "demo":
        level = os.environ.get("PROCMAN_LOG_LEVEL", args.log_level).upper()
        if args.log == "logging":
            logging.basicConfig(
                level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
            )
        else:  # loguru: procman's records are disabled until the application enables them
            from loguru import logger

            logger.remove()
            logger.add(sys.stderr, level=level)
            logger.enable("procman")
        return asyncio.run(_run_demo(args))
    return 2  # pragma: no cover - argparse enforces the choices


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
