"""Application-side OpenTelemetry SDK set-up for ``procman demo`` and small apps.

Library code never configures the SDK; this module is for the *application*
(the CLI's ``--otel console|otlp`` uses it). :func:`configure_sdk`:

* builds a ``TracerProvider`` whose resource comes from the standard
  variables (``OTEL_SERVICE_NAME``, default ``procman``;
  ``OTEL_RESOURCE_ATTRIBUTES``), with a ``BatchSpanProcessor``;
* ``console``: spans are printed to stdout (logs stay with your logging set-up);
* ``otlp``: spans *and* logs go to an OTLP/HTTP endpoint configured by the
  standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT``, default
  ``http://localhost:4318``; the ``..._TRACES_...``/``..._LOGS_...`` variants,
  ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_EXPORTER_OTLP_TIMEOUT``). Only the
  ``http/protobuf`` protocol is supported (``OTEL_EXPORTER_OTLP_PROTOCOL``);
  another value raises :class:`ValueError`. Logs: a ``LoggerProvider`` and a
  ``LoggingHandler`` on the ``procman`` logger, so procman's records (event
  name in ``procman_event``) are exported with the trace id of the child's span;
* installs the providers as the global ones (``set_global=False`` to skip),
  so application spans (``trace.get_tracer(...)``) use them too;
* appends to ``cleanups`` the functions that flush and shut everything down
  (call them in reverse order on exit, as the CLI does);
* returns ``[OtelTracingObserver(provider)]``.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from procman.observer import Observer

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

__all__ = ["check_environment", "configure_sdk"]

_SUPPORTED_PROTOCOL = "http/protobuf"


def _protocol(signal: str) -> str:
    value = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", _SUPPORTED_PROTOCOL
    )
    value = value.strip().lower()
    if value != _SUPPORTED_PROTOCOL:
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={value!r} is not supported by procman's OTLP set-up; "
            f"use {_SUPPORTED_PROTOCOL!r} (an OpenTelemetry Collector accepts it on port 4318)"
        )
    return value


def check_environment(mode: str) -> None:
    """Raise :class:`ValueError` when ``mode`` or the ``OTEL_*`` variables it reads are unusable.

    What :func:`configure_sdk` checks first; launchers call it before starting
    anything, to report a configuration error as such (``procman run``: exit 2).
    """
    if mode not in ("console", "otlp"):
        raise ValueError(f"mode must be 'console' or 'otlp', got {mode!r}")
    if mode == "otlp":
        _protocol("TRACES")
        _protocol("LOGS")


def configure_sdk(
    mode: Literal["console", "otlp"],
    cleanups: list[Callable[[], None]],
    *,
    set_global: bool = True,
    logger: str = "procman",
) -> list[Observer]:
    """Configure the OpenTelemetry SDK for ``mode``; see the module docstring."""
    check_environment(mode)
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )
    except ImportError as exc:
        raise ImportError(
            "--otel needs the OpenTelemetry SDK: pip install 'procman[otel]'"
        ) from exc

    from procman.observe.otel import OtelTracingObserver

    defaults = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "procman"}
    resource = Resource.create(defaults)
    provider = TracerProvider(resource=resource)
    exporter: SpanExporter
    if mode == "console":
        exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise ImportError(
                "--otel otlp needs opentelemetry-exporter-otlp-proto-http: "
                "pip install 'procman[otel]'"
            ) from exc
        exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    if set_global:
        trace.set_tracer_provider(provider)
    cleanups.append(provider.shutdown)
    if mode == "otlp":
        _configure_logs(resource, cleanups, set_global=set_global, logger=logger)
    return [OtelTracingObserver(provider)]


def _configure_logs(
    resource: Resource, cleanups: list[Callable[[], None]], *, set_global: bool, logger: str
) -> None:
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    if set_global:
        set_logger_provider(provider)
    with warnings.catch_warnings():
        # The SDK's handler is deprecated in favour of opentelemetry-instrumentation-logging,
        # which procman does not depend on; it still works and is what this set-up needs.
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(logger_provider=provider)
    target = logging.getLogger(logger)
    target.addHandler(handler)

    def close() -> None:
        target.removeHandler(handler)
        provider.shutdown()

    cleanups.append(close)
