"""Supervision policies: restart strategies, restart types, backoff and per-child options.

The names follow Erlang/OTP's supervisor (``one_for_one``, ``permanent``,
``significant`` ...). With no policy set a manager behaves as the seed crate
does: the first failure shuts the whole tree down and is raised.
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from procman._validate import RUNNABLE_TYPES, check_bool, check_name, check_runnable, seconds

if TYPE_CHECKING:
    from procman.runnable import Runnable

__all__ = [
    "DEFAULT_SPEC",
    "ChildSpec",
    "Restart",
    "RestartBackoff",
    "Strategy",
    "child_entry",
]


class Strategy(enum.Enum):
    """Which children a manager restarts when one of them needs a restart."""

    ONE_FOR_ONE = "one_for_one"
    """Restart only the child that ended (the default)."""
    ONE_FOR_ALL = "one_for_all"
    """Stop every other child (reverse start order), then restart all in start order."""
    REST_FOR_ONE = "rest_for_one"
    """Stop the children started after it (reverse order), then restart them with it."""


class Restart(enum.Enum):
    """When a child is restarted (its *restart type*)."""

    PERMANENT = "permanent"
    """Restarted whenever it ends, also after a clean return."""
    TRANSIENT = "transient"
    """Restarted only after a failure (the default)."""
    TEMPORARY = "temporary"
    """Never restarted; its failure is reported and does not stop its siblings."""


@dataclass(frozen=True, slots=True)
class RestartBackoff:
    """Exponential backoff: restart ``n`` (1-based) waits ``min(max, initial * factor**(n-1))``.

    ``jitter`` (0 to 1) shortens each delay by a random fraction up to that
    much, so many restarting children do not wake together. ``reset_after``:
    a run that lasted at least this long resets the delay to ``initial``
    (default: ``max``, at least 1 s). Delays are computed without overflow
    for any restart number.
    """

    initial: float = 0.1
    max: float = 30.0
    factor: float = 2.0
    jitter: float = 0.0
    reset_after: float | None = None

    def __post_init__(self) -> None:
        initial = seconds(self.initial, "initial")
        maximum = seconds(self.max, "max")
        if maximum < initial:
            raise ValueError(f"max ({self.max!r}) must be >= initial ({self.initial!r})")
        if isinstance(self.factor, bool) or not isinstance(self.factor, int | float):
            raise TypeError(f"factor must be a number, got {self.factor!r}")
        try:
            factor = float(self.factor)
        except OverflowError:
            raise ValueError(f"factor is too large, got {self.factor!r}") from None
        if not 1.0 <= factor < math.inf:
            raise ValueError(f"factor must be >= 1 and finite, got {self.factor!r}")
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, int | float):
            raise TypeError(f"jitter must be a number, got {self.jitter!r}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be between 0 and 1, got {self.jitter!r}")
        object.__setattr__(self, "initial", initial)
        object.__setattr__(self, "max", maximum)
        object.__setattr__(self, "factor", factor)
        object.__setattr__(self, "jitter", float(self.jitter))
        if self.reset_after is not None:
            object.__setattr__(self, "reset_after", seconds(self.reset_after, "reset_after"))

    def delay(self, restart: int) -> float:
        """The delay before restart number ``restart`` (1-based), jitter applied."""
        initial = self.initial
        if not initial:
            return 0.0
        exponent = max(restart - 1, 0)
        factor = self.factor
        if factor == 1.0 or exponent == 0:
            value = initial
        elif exponent >= math.log(self.max / initial, factor):
            value = self.max  # the cap is reached: no power computed, so no overflow
        else:
            value = min(self.max, initial * factor**exponent)
        if self.jitter:
            value *= 1.0 - self.jitter * random.random()
        return value

    @property
    def reset_threshold(self) -> float:
        return self.reset_after if self.reset_after is not None else max(self.max, 1.0)


DEFAULT_READY_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How a manager supervises one child (the keyword options of ``insert``/``add``)."""

    restart: Restart = Restart.TRANSIENT
    wait_ready: bool = False
    ready_timeout: float = DEFAULT_READY_TIMEOUT
    shutdown_timeout: float | None = None
    significant: bool = False

    @classmethod
    def of(
        cls,
        *,
        restart: Any = Restart.TRANSIENT,
        wait_ready: Any = False,
        ready_timeout: Any = DEFAULT_READY_TIMEOUT,
        shutdown_timeout: Any = None,
        significant: Any = False,
    ) -> ChildSpec:
        """A checked spec; every bad value raises naming its argument."""
        if not isinstance(restart, Restart):
            raise TypeError(
                f"restart must be a procman.Restart (PERMANENT, TRANSIENT or TEMPORARY), "
                f"got {type(restart).__name__}: {restart!r}"
            )
        check_bool(wait_ready, "wait_ready")
        check_bool(significant, "significant")
        timeout = seconds(ready_timeout, "ready_timeout", allow_zero=False)
        stop = None if shutdown_timeout is None else seconds(shutdown_timeout, "shutdown_timeout")
        if significant and restart is Restart.PERMANENT:
            raise ValueError(
                "significant=True needs restart=Restart.TRANSIENT or Restart.TEMPORARY: a "
                "PERMANENT child is restarted whenever it ends, so it never ends the tree"
            )
        if (
            restart is Restart.TRANSIENT
            and not wait_ready
            and timeout == DEFAULT_READY_TIMEOUT
            and stop is None
            and not significant
        ):
            return DEFAULT_SPEC
        return cls(restart, wait_ready, timeout, stop, significant)


DEFAULT_SPEC = ChildSpec()
"""The spec of a child inserted without options (shared: no allocation per child)."""


def child_entry(
    runnable: Runnable,
    restart: Restart = Restart.TRANSIENT,
    wait_ready: bool = False,
    ready_timeout: float | timedelta = DEFAULT_READY_TIMEOUT,
    shutdown_timeout: float | timedelta | None = None,
    significant: bool = False,
    arg: str = "runnable",
) -> tuple[str, ChildSpec]:
    """The checked name and spec of a child (insert, add and the builder's pre_insert).

    Raises naming the bad argument; a child inserted without options shares
    :data:`DEFAULT_SPEC` (nothing to check, nothing allocated).
    """
    if type(runnable) not in RUNNABLE_TYPES:  # the ABC check runs once per type
        check_runnable(runnable, arg)
    name = runnable.process_name()
    if type(name) is not str or not name.isascii() or not name:
        name = check_name(name, f"{type(runnable).__name__}.process_name()")
    if (
        restart is Restart.TRANSIENT
        and wait_ready is False
        and ready_timeout is DEFAULT_READY_TIMEOUT
        and shutdown_timeout is None
        and significant is False
    ):
        return name, DEFAULT_SPEC
    spec = ChildSpec.of(
        restart=restart,
        wait_ready=wait_ready,
        ready_timeout=ready_timeout,
        shutdown_timeout=shutdown_timeout,
        significant=significant,
    )
    return name, spec
