"""The launcher's options: checks of run()'s arguments, log levels, the extras they need."""

from __future__ import annotations

import importlib.util
import logging
from typing import Literal

from procman._validate import seconds

__all__ = [
    "LogBackend",
    "LogFormat",
    "OtelMode",
    "check_options",
    "log_level_number",
    "require_extras",
]

OtelMode = Literal["console", "otlp", "none"]
LogBackend = Literal["logging", "loguru"]
LogFormat = Literal["text", "json"]


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


def require_extras(
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


def check_options(
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
