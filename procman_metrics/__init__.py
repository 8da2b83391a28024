"""Prometheus and OpenTelemetry metrics for procman trees.

``PrometheusMetrics`` and ``MetricsServer`` need the ``prometheus`` extra
(``pip install 'procman[prometheus]'``), ``OtelMetrics`` the ``otel`` extra.
Each is imported on first access, so importing this package costs nothing
and a missing extra surfaces as an ImportError naming what to install.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from procman_metrics.otel import OtelMetrics
    from procman_metrics.prometheus import PrometheusMetrics
    from procman_metrics.server import MetricsServer, MetricsServerError

__all__ = ["MetricsServer", "MetricsServerError", "OtelMetrics", "PrometheusMetrics"]

_LAZY = {
    "PrometheusMetrics": "procman_metrics.prometheus",
    "OtelMetrics": "procman_metrics.otel",
    "MetricsServer": "procman_metrics.server",
    "MetricsServerError": "procman_metrics.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'procman_metrics' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
