"""The ``procman`` command line: ``procman demo`` runs an observable demo tree."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from procman._version import __version__
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
    return parser


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
    task = asyncio.ensure_future(root.process_start())
    try:
        if args.duration is not None:
            done, _ = await asyncio.wait({task}, timeout=args.duration)
            if not done:
                _say(f"demo: --duration {args.duration:g}s elapsed, shutting down")
                await root.process_handle().shutdown()
        await task
    except TerminationSignal as sig:
        _say(f"demo: stopped by {sig.signal.name}")
        return 0
    finally:
        for cleanup in reversed(cleanups):
            with contextlib.suppress(Exception):
                cleanup()
    _say("demo: stopped cleanly")
    return 0


def _say(text: str) -> None:
    print(text, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``procman`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        level = os.environ.get("PROCMAN_LOG_LEVEL", args.log_level).upper()
        if args.log == "logging":
            logging.basicConfig(
                level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
            )
        return asyncio.run(_run_demo(args))
    return 2  # pragma: no cover - argparse enforces the choices


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
