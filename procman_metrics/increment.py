"""Labelled counter increments and gauge sets: the one module using prometheus_client internals.

Every event counted in a prometheus_client series ends in one of these
calls (the per-supervisor series; the per-child ones only in multiprocess
mode, see :mod:`procman_metrics.child_series`). prometheus_client's public
``Counter.inc(1, exemplar)`` checks that the metric is observable and that
the amount is not negative, and validates the exemplar's label names and
length on every call; ``Gauge.set`` checks
observability and converts to float. None of it can fail for procman's
calls: only labelled children returned by ``labels()`` (always observable)
are passed here, amounts are 1, values are floats, and the exemplars always
have the same valid shape (``trace_id``: 32 hex digits, ``span_id``: 16 hex
digits, 63 characters in all, under the 128 limit). So :func:`inc` and
:func:`set_gauge` do only the locked operations the public methods end
with: ``child._value.inc(1)``, ``child._value.set_exemplar(...)``,
``child._value.set(value)``.

Measured (``timeit``, min of 9 x 200k, CPython 3.11, prometheus_client
0.26, one labelled child; the first column on a quiet machine, the second
on the shared 2-core machine under load 8):

=====================================  ==================  ==================
per call                               public              private (used)
=====================================  ==================  ==================
counter increment, no exemplar         0.72 us / 1.4-2.3   0.67 us / 1.1-1.5
counter increment with an exemplar     4.5 us / 9-10       1.7 us / 4.3-4.9
gauge set                              0.70 us / 1.8-2.3   0.50 us / 1.1-1.3
=====================================  ==================  ==================

A run counts at least two events (start: increment + gauge set; exit:
increment), so the private path saves about 0.4-1.5 us per run without
tracing and about 6 us with tracing (exemplars), on a per-event cost of a
few microseconds. Fallback: when the installed prometheus_client does not
have that internal shape, :data:`PRIVATE` is False and the public methods
are used; ``tests/test_metrics_prometheus.py`` fails loudly on such a
version so that this module is revisited rather than silently slower.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from procman_metrics._deps import PROMETHEUS_HINT

try:
    from prometheus_client import CollectorRegistry, Counter, Gauge
    from prometheus_client.samples import Exemplar
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(f"procman_metrics needs prometheus_client: {PROMETHEUS_HINT}") from exc

__all__ = ["PRIVATE", "inc", "private_shape_supported", "set_gauge"]


def _public_inc(child: Any, exemplar: dict[str, str] | None) -> None:
    child.inc(1, exemplar)


def _private_inc(child: Any, exemplar: dict[str, str] | None) -> None:
    value = child._value
    value.inc(1)
    if exemplar:
        value.set_exemplar(Exemplar(exemplar, 1, time.time()))


def _public_set(child: Any, value: float) -> None:
    child.set(value)


def _private_set(child: Any, value: float) -> None:
    child._value.set(value)


def private_shape_supported() -> bool:
    """Whether labelled counter and gauge children have the internals used here."""
    registry = CollectorRegistry(auto_describe=True)
    counter = getattr(
        Counter("procman_probe", "probe", ("x",), registry=registry).labels("x"), "_value", None
    )
    gauge = getattr(
        Gauge("procman_probe_g", "probe", ("x",), registry=registry).labels("x"), "_value", None
    )
    return all(callable(getattr(counter, m, None)) for m in ("inc", "set_exemplar")) and callable(
        getattr(gauge, "set", None)
    )


PRIVATE = private_shape_supported()
"""True when :func:`inc` and :func:`set_gauge` use the internals (see the module docstring)."""

inc: Callable[[Any, dict[str, str] | None], None] = _private_inc if PRIVATE else _public_inc
"""``inc(child, exemplar)``: ``child.inc(1, exemplar)`` for a labelled counter child."""

set_gauge: Callable[[Any, float], None] = _private_set if PRIVATE else _public_set
"""``set_gauge(child, value)``: ``child.set(value)`` for a labelled gauge child."""
