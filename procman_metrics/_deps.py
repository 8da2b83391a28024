"""Lazy access to the optional third-party libraries, with a helpful ImportError.

Nothing here imports a third-party module at import time; each function
imports on first use and names the extra to install when it is missing.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["otel_available", "require", "require_otel", "require_prometheus"]

PROMETHEUS_HINT = "pip install 'procman[prometheus]'"
OTEL_HINT = "pip install 'procman[otel]'"


def require(module: str, hint: str, what: str) -> ModuleType:
    """Import ``module`` or raise ImportError telling the user how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{what} needs {module.split('.')[0]}: {hint}") from exc


def require_prometheus(module: str = "prometheus_client") -> ModuleType:
    """``prometheus_client`` (or one of its submodules), or an ImportError naming the extra."""
    return require(module, PROMETHEUS_HINT, "procman_metrics (Prometheus metrics)")


def require_otel(module: str = "opentelemetry.metrics") -> ModuleType:
    """An ``opentelemetry`` API module, or an ImportError naming the extra."""
    return require(module, OTEL_HINT, "procman_metrics.OtelMetrics")


def otel_available() -> bool:
    """Whether the OpenTelemetry trace API can be imported (checked once per call site)."""
    try:
        importlib.import_module("opentelemetry.trace")
    except ImportError:
        return False
    return True
