"""Counter increments carrying an exemplar, without per-call re-validation.

``Counter.inc(1, exemplar)`` validates the exemplar's label names and length
on every call (about 1 us). procman's exemplars always have the same shape
(``trace_id``: 32 hex digits, ``span_id``: 16 hex digits: valid by
construction), so :func:`inc` increments the labelled child's value and sets
the exemplar directly, the same two locked operations ``Counter.inc`` ends
with. When the installed prometheus_client does not have that shape (a
child without ``_value.inc`` / ``_value.set_exemplar``), :func:`inc` is
``child.inc(1, exemplar)``. :func:`set_gauge` likewise sets a labelled
gauge child's value without ``Gauge.set``'s observability check and float
conversion (the value is always a float here). Only labelled children
returned by ``labels()`` (always observable) are passed here.
"""

from __future__ import annotations

import time
from typing import Any

from procman_metrics._deps import PROMETHEUS_HINT

try:
    from prometheus_client import CollectorRegistry, Counter
    from prometheus_client.samples import Exemplar
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(f"procman_metrics needs prometheus_client: {PROMETHEUS_HINT}") from exc

__all__ = ["inc", "set_gauge"]


def _public_inc(child: Any, exemplar: dict[str, str] | None) -> None:
    child.inc(1, exemplar)


def _direct_inc(child: Any, exemplar: dict[str, str] | None) -> None:
    value = child._value
    value.inc(1)
    if exemplar:
        value.set_exemplar(Exemplar(exemplar, 1, time.time()))


def _public_set(child: Any, value: float) -> None:
    child.set(value)


def _direct_set(child: Any, value: float) -> None:
    child._value.set(value)


def _supports_direct() -> bool:
    probe = Counter(
        "procman_probe", "probe", ("x",), registry=CollectorRegistry(auto_describe=True)
    )
    value = getattr(probe.labels("x"), "_value", None)
    return all(callable(getattr(value, m, None)) for m in ("inc", "set", "set_exemplar"))


_DIRECT = _supports_direct()

inc = _direct_inc if _DIRECT else _public_inc
"""``inc(child, exemplar)``: ``child.inc(1, exemplar)`` for a labelled counter child."""

set_gauge = _direct_set if _DIRECT else _public_set
"""``set_gauge(child, value)``: ``child.set(value)`` for a labelled gauge child."""
