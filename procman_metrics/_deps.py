"""The optional third-party libraries: install hints and an availability check.

Nothing here imports a third-party module at import time. The backends import
their library themselves and name the extra to install (these hints) when it
is missing.
"""

from __future__ import annotations

import importlib

__all__ = ["OTEL_HINT", "PROMETHEUS_HINT", "otel_available"]

PROMETHEUS_HINT = "pip install 'procman[prometheus]'"
OTEL_HINT = "pip install 'procman[otel]'"


def otel_available() -> bool:
    """Whether the OpenTelemetry trace API can be imported (checked once per call site)."""
    try:
        importlib.import_module("opentelemetry.trace")
    except ImportError:
        return False
    return True
