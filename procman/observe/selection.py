"""Choose observer backends by name, in code or from the environment.

Names (case-insensitive, comma or space separated, duplicates ignored):

=============  ==============================================  =========================
name           observer                                        extra
=============  ==============================================  =========================
``logging``    :class:`procman.observe.LoggingObserver`        (stdlib)
``loguru``     :class:`procman.observe.LoguruObserver`         ``procman[loguru]``
``otel``       :class:`procman.observe.OtelTracingObserver`    ``procman[otel]``
``prometheus`` :class:`procman_metrics.PrometheusMetrics`      ``procman[prometheus]``
``none``       no observer at all (must be the only name)
=============  ==============================================  =========================

The OpenTelemetry observer uses the global tracer provider (configure the SDK
in the application) and is always put first, so the records and metric
exemplars of a child's start see its span. The result is meant for
``ProcessManager(observers=...)``; an empty list means no observer (not the
default), which costs next to nothing.

Errors: an unknown name raises :class:`ValueError` listing the valid names; a
backend whose extra is not installed raises :class:`ImportError` naming the
``pip install`` command.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

from procman.observer import Observer

__all__ = ["BACKENDS", "observers_from_env", "observers_from_names"]


def _logging() -> Observer:
    from procman.observe.logging import LoggingObserver

    return LoggingObserver()


def _lazy(module: str, attribute: str, extra: str, library: str) -> Callable[[], Observer]:
    def build() -> Observer:
        try:
            cls: Any = getattr(importlib.import_module(module), attribute)
        except ImportError as exc:
            raise ImportError(
                f"the {attribute} observer needs {library}: pip install 'procman[{extra}]'"
            ) from exc
        observer: Observer = cls()
        return observer

    return build


BACKENDS: dict[str, Callable[[], Observer]] = {
    "logging": _logging,
    "loguru": _lazy("procman.observe.loguru", "LoguruObserver", "loguru", "loguru"),
    "otel": _lazy("procman.observe.otel", "OtelTracingObserver", "otel", "opentelemetry-api"),
    "prometheus": _lazy("procman_metrics", "PrometheusMetrics", "prometheus", "prometheus-client"),
}
"""Backend name -> factory of a default-configured observer."""

_NONE = "none"
_FIRST = ("otel",)  # tracing first: later observers see the run span at a child's start
_SPLIT = re.compile(r"[\s,]+")


def _parse(names: str | Iterable[str], source: str) -> list[str]:
    items = _SPLIT.split(names) if isinstance(names, str) else list(names)
    chosen: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"observer names must be strings, got {item!r}")
        name = item.strip().lower()
        if not name or name in chosen:
            continue
        if name != _NONE and name not in BACKENDS:
            valid = ", ".join([*BACKENDS, _NONE])
            raise ValueError(f"unknown observer {item!r} in {source}; valid names: {valid}")
        chosen.append(name)
    if _NONE in chosen and len(chosen) > 1:
        raise ValueError(f"'none' cannot be combined with other observers in {source}")
    return chosen


def _build(chosen: list[str]) -> list[Observer]:
    chosen.sort(key=lambda name: name not in _FIRST)
    return [BACKENDS[name]() for name in chosen if name != _NONE]


def observers_from_names(names: str | Iterable[str]) -> list[Observer]:
    """One default-configured observer per name (``"logging,otel"``); ``"none"`` gives []."""
    return _build(_parse(names, repr(names) if isinstance(names, str) else "observer names"))


def observers_from_env(var: str = "PROCMAN_OBSERVERS", default: str = "logging") -> list[Observer]:
    """The observers named by the environment variable ``var`` (``default`` when unset or empty).

    For applications run by a launcher: ``PROCMAN_OBSERVERS=logging,otel``. Errors name
    the variable.
    """
    value = os.environ.get(var, "").strip() or default
    return _build(_parse(value, f"${var}={value!r}"))
