"""JSON log lines for the stdlib :mod:`logging` module (``procman run --log-format json``).

:func:`json_formatter` returns a :class:`logging.Formatter` (python-json-logger's
``JsonFormatter``, extra ``procman[json]``) that renders every record as one
JSON object on one line:

* ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``, ``message``;
* every field passed in ``extra`` (procman's records carry ``procman_event``,
  ``procman_supervisor``, ``procman_child``, ...);
* ``exception``: the formatted traceback when the record has ``exc_info``
  (newlines are escaped by JSON, so the record stays on one line);
* ``trace_id`` / ``span_id`` (lower-case hex) when an OpenTelemetry span is
  current, looked up only when ``opentelemetry-api`` is installed.

Errors: without python-json-logger, :func:`json_formatter` raises
:class:`ImportError` naming ``pip install 'procman[json]'``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["json_formatter"]

_HINT = "JSON logs need python-json-logger: pip install 'procman[json]'"

TraceIds = Callable[[], "tuple[str, str, bool] | None"]


def _trace_source() -> TraceIds | None:
    try:
        from procman.observe.otel_logging import current_trace_ids
    except ImportError:
        return None
    return current_trace_ids


def json_formatter() -> logging.Formatter:
    """A formatter writing each record as one JSON object (see the module docstring)."""
    try:
        from pythonjsonlogger.json import JsonFormatter
    except ImportError as exc:
        raise ImportError(_HINT) from exc

    trace_ids = _trace_source()

    class _ProcmanJsonFormatter(JsonFormatter):
        def add_fields(
            self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
        ) -> None:
            super().add_fields(log_data, record, message_dict)
            if "timestamp" in log_data:  # first, as log shippers show it
                rest = {k: v for k, v in log_data.items() if k != "timestamp"}
                timestamp = log_data["timestamp"]
                log_data.clear()
                log_data["timestamp"] = timestamp
                log_data.update(rest)
            if trace_ids is not None and "trace_id" not in log_data:
                ids = trace_ids()
                if ids is not None:
                    log_data["trace_id"], log_data["span_id"], _ = ids

    formatter: logging.Formatter = _ProcmanJsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"},
        timestamp="timestamp",
        json_ensure_ascii=False,
    )
    return formatter
