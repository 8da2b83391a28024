"""Argument checks shared by the builder and the built-ins (clear errors at the call)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from procman.runnable import Runnable

__all__ = ["check_bool", "check_count", "check_name", "check_runnable", "seconds"]


def seconds(value: Any, arg: str, *, allow_zero: bool = True) -> float:
    """``value`` (number of seconds or :class:`datetime.timedelta`) as a float, checked."""
    if isinstance(value, timedelta):
        result = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{arg} must be a number of seconds or a datetime.timedelta, "
            f"got {type(value).__name__}: {value!r}"
        )
    else:
        try:
            result = float(value)
        except OverflowError:
            raise ValueError(f"{arg} is too large, got {value!r}") from None
    if math.isnan(result) or math.isinf(result):
        raise ValueError(f"{arg} must be finite, got {value!r}")
    if result < 0 or (result == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{arg} must be {bound} seconds, got {value!r}")
    return result


def check_name(value: Any, arg: str = "name") -> str:
    """A non-empty string."""
    if not isinstance(value, str):
        raise TypeError(f"{arg} must be a str, got {type(value).__name__}: {value!r}")
    if not value:
        raise ValueError(f"{arg} must not be empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{arg} must be encodable as UTF-8 (it is a log field, metric label and span "
            f"attribute), got {value!r}: {exc.reason} at index {exc.start}"
        ) from None
    return value


def check_bool(value: Any, arg: str) -> bool:
    """A bool, not merely truthy."""
    if not isinstance(value, bool):
        raise TypeError(f"{arg} must be a bool, got {type(value).__name__}: {value!r}")
    return value


def check_count(value: Any, arg: str) -> int:
    """A non-negative int."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{arg} must be an int, got {type(value).__name__}: {value!r}")
    if value < 0:
        raise ValueError(f"{arg} must be >= 0, got {value!r}")
    return value


RUNNABLE_TYPES: set[type] = set()


def check_runnable(value: Any, arg: str = "runnable") -> Runnable:
    """``value`` if it is a :class:`Runnable`, else a TypeError that says how to make one."""
    cls = type(value)
    if cls in RUNNABLE_TYPES:  # the ABC check is slow; types seen once are remembered
        return value  # type: ignore[no-any-return]
    if isinstance(value, Runnable):
        RUNNABLE_TYPES.add(cls)
    else:
        raise TypeError(
            f"{arg} must be a procman.Runnable, got {type(value).__name__}; wrap an "
            "'async def fn(ctx)' with procman.runnable(fn) or an object with "
            "process_start_with_context(ctx) with procman.with_runtime_context(obj)"
        )
    return value
