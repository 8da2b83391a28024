"""Argument checks of Subprocess: argv, env, signals, logging levels, the ready pattern."""

from __future__ import annotations

import logging
import os
import re
import signal
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["check_argv", "check_env", "check_level", "check_pattern", "check_signal"]


def check_argv(argv: Any) -> tuple[str, ...]:
    if isinstance(argv, str | bytes | os.PathLike) or not isinstance(argv, Sequence):
        raise TypeError(
            f"argv must be a sequence of str or os.PathLike (e.g. ['prog', '--flag']), "
            f"got {type(argv).__name__}: {argv!r}"
        )
    if not argv:
        raise ValueError("argv must not be empty")
    result: list[str] = []
    for i, arg in enumerate(argv):
        value = os.fspath(arg) if isinstance(arg, os.PathLike) else arg
        if not isinstance(value, str):
            raise TypeError(
                f"argv[{i}] must be a str or os.PathLike[str], got {type(arg).__name__}: {arg!r}"
            )
        if "\0" in value:
            raise ValueError(f"argv[{i}] must not contain a NUL character")
        result.append(value)
    if not result[0]:
        raise ValueError("argv[0] (the program) must not be empty")
    return tuple(result)


def check_env(env: Any) -> dict[str, str | None]:
    if env is None:
        return {}
    if not isinstance(env, Mapping):
        raise TypeError(f"env must be a mapping of str to str, got {type(env).__name__}")
    result: dict[str, str | None] = {}
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise ValueError(f"env keys must be non-empty str without '=', got {key!r}")
        if value is not None and not isinstance(value, str):
            raise TypeError(f"env[{key!r}] must be a str or None, got {type(value).__name__}")
        result[key] = value
    return result


def check_signal(value: Any, arg: str) -> signal.Signals:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{arg} must be a signal.Signals, got {type(value).__name__}: {value!r}")
    try:
        return signal.Signals(value)
    except ValueError:
        raise ValueError(f"{arg} must be a valid signal, got {value!r}") from None


def check_level(value: Any, arg: str) -> int:
    if isinstance(value, str):
        level = logging.getLevelNamesMapping().get(value.upper())
        if level is None:
            raise ValueError(f"{arg} must be a logging level, got {value!r}")
        return level
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{arg} must be a logging level (int or name), got {value!r}")
    if value < 0:
        raise ValueError(f"{arg} must be >= 0, got {value!r}")
    return value


def check_pattern(value: Any) -> re.Pattern[str] | None:
    if value is None:
        return None
    if isinstance(value, re.Pattern):
        if not isinstance(value.pattern, str):
            raise TypeError("ready_pattern must be a str pattern, not bytes")
        return value
    if not isinstance(value, str):
        raise TypeError(f"ready_pattern must be a str or re.Pattern, got {type(value).__name__}")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"ready_pattern is not a valid regular expression: {exc}") from None
