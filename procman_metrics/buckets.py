"""Histogram bucket boundaries (seconds) shared by the Prometheus and OTel backends."""

from __future__ import annotations

__all__ = ["SHUTDOWN_BUCKETS"]

SHUTDOWN_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
"""Boundaries for shutdown durations: 1 ms to 5 minutes (+Inf is implied).

Dense below a second (an idle tree shuts down in milliseconds), then the
usual grace periods: 5 s, 10 s, 30 s (the default grace period), 1, 2 and
5 minutes, so a p99 near the grace period is still resolved.
"""
