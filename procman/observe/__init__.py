"""Observer backends.

``LoggingObserver`` (stdlib :mod:`logging`) is imported eagerly; the others are
imported on first access, so ``import procman.observe`` needs no third-party
library and a missing extra surfaces as an ImportError naming it:

* ``LoguruObserver`` -- ``pip install 'procman[loguru]'``
* ``OtelTracingObserver`` -- ``pip install 'procman[otel]'``
* ``TraceContextFilter`` -- trace ids on stdlib log records (``otel`` extra)
* ``ThreadedObserver`` -- hands events to a worker thread (never for tracing observers)
* ``observers_from_names`` / ``observers_from_env`` -- choose backends by name
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from procman.observe.logging import LoggingObserver

if TYPE_CHECKING:
    from procman.observe.loguru import LoguruObserver
    from procman.observe.otel import OtelTracingObserver
    from procman.observe.otel_logging import TraceContextFilter
    from procman.observe.selection import observers_from_env, observers_from_names
    from procman.observe.threaded import ThreadedObserver

__all__ = [
    "LoggingObserver",
    "LoguruObserver",
    "OtelTracingObserver",
    "ThreadedObserver",
    "TraceContextFilter",
    "observers_from_env",
    "observers_from_names",
]

_LAZY = {
    "LoguruObserver": "procman.observe.loguru",
    "OtelTracingObserver": "procman.observe.otel",
    "ThreadedObserver": "procman.observe.threaded",
    "TraceContextFilter": "procman.observe.otel_logging",
    "observers_from_env": "procman.observe.selection",
    "observers_from_names": "procman.observe.selection",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'procman.observe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
