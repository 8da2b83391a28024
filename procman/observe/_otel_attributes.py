"""Span attribute keys and span-building helpers shared by the tracing observer's parts."""

from __future__ import annotations

import time

from procman import vocabulary as v

SUPERVISOR = v.SUPERVISOR.attribute_key
CHILD = v.CHILD.attribute_key
RESTART_COUNT = v.RESTART_COUNT.attribute_key
EXIT_REASON = v.OUTCOME.attribute_key
ERROR_TYPE = v.ERROR_TYPE.attribute_key
DURATION = v.DURATION.attribute_key
STRATEGY = v.STRATEGY.attribute_key

_DESCRIPTION_LIMIT = 200


def short(text: str) -> str:
    """``text`` cut to a span status description's length."""
    return text if len(text) <= _DESCRIPTION_LIMIT else text[: _DESCRIPTION_LIMIT - 3] + "..."


def wall_ns(monotonic: float) -> int:
    """Convert a :func:`time.monotonic` timestamp to epoch nanoseconds."""
    return time.time_ns() - int((time.monotonic() - monotonic) * 1e9)
