"""ProcessManagerBuilder: fluent, checked construction of a ProcessManager."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from procman._validate import check_bool, check_count, check_name, seconds
from procman.manager import (
    DEFAULT_CANCEL_TIMEOUT,
    DEFAULT_GRACE_PERIOD,
    DEFAULT_WITHIN,
    ProcessManager,
)
from procman.observer import Fanout, Observer
from procman.policy import DEFAULT_READY_TIMEOUT, Restart, RestartBackoff, Strategy, child_entry
from procman.runnable import Runnable

if TYPE_CHECKING:
    from typing import Self

__all__ = ["ProcessManagerBuilder"]


class ProcessManagerBuilder:
    """Fluent construction of a :class:`ProcessManager`; every setter checks its value."""

    def __init__(self) -> None:
        self._name = "process-manager"
        self._children: list[tuple[Runnable, dict[str, Any]]] = []
        self._auto_cleanup = True
        self._grace = DEFAULT_GRACE_PERIOD
        self._cancel_timeout = DEFAULT_CANCEL_TIMEOUT
        self._observers: list[Observer] | None = None
        self._strategy = Strategy.ONE_FOR_ONE
        self._max_restarts = 0
        self._within = DEFAULT_WITHIN
        self._backoff: RestartBackoff | None = None
        self._ordered = False

    def name(self, name: str) -> Self:
        self._name = check_name(name)
        return self

    def pre_insert(
        self,
        runnable: Runnable,
        *,
        restart: Restart = Restart.TRANSIENT,
        wait_ready: bool = False,
        ready_timeout: float | timedelta = DEFAULT_READY_TIMEOUT,
        shutdown_timeout: float | timedelta | None = None,
        significant: bool = False,
    ) -> Self:
        """Register a child with its options (see :meth:`ProcessManager.insert`)."""
        options: dict[str, Any] = {
            "restart": restart,
            "wait_ready": wait_ready,
            "ready_timeout": ready_timeout,
            "shutdown_timeout": shutdown_timeout,
            "significant": significant,
        }
        child_entry(runnable, **options, arg="pre_insert() argument")  # errors at this call
        self._children.append((runnable, options))
        return self

    def auto_cleanup(self, enabled: bool) -> Self:
        self._auto_cleanup = check_bool(enabled, "auto_cleanup")
        return self

    def shutdown_grace_period(self, period: float | timedelta) -> Self:
        self._grace = seconds(period, "shutdown_grace_period")
        return self

    def cancel_timeout(self, period: float | timedelta) -> Self:
        """How long to wait for a force-cancelled child before abandoning it (default 5 s)."""
        self._cancel_timeout = seconds(period, "cancel_timeout")
        return self

    def strategy(self, strategy: Strategy) -> Self:
        """Which children restart together (default :attr:`Strategy.ONE_FOR_ONE`)."""
        if not isinstance(strategy, Strategy):
            raise TypeError(
                f"strategy must be a procman.Strategy, got {type(strategy).__name__}: {strategy!r}"
            )
        self._strategy = strategy
        return self

    def intensity(self, max_restarts: int, within: float | timedelta = DEFAULT_WITHIN) -> Self:
        """Allow at most ``max_restarts`` restarts within ``within`` seconds (default 0)."""
        self._max_restarts = check_count(max_restarts, "max_restarts")
        self._within = seconds(within, "within", allow_zero=False)
        return self

    def backoff(self, backoff: RestartBackoff) -> Self:
        """The delay before each restart (default ``RestartBackoff()``)."""
        if not isinstance(backoff, RestartBackoff):
            raise TypeError(f"backoff must be a RestartBackoff, got {type(backoff).__name__}")
        self._backoff = backoff
        return self

    def ordered(self, enabled: bool = True) -> Self:
        """Start children one at a time (each once the previous is ready), stop in reverse."""
        self._ordered = check_bool(enabled, "ordered")
        return self

    def observer(self, observer: Observer) -> Self:
        """Attach an observer to the manager and its whole subtree (repeatable)."""
        Fanout((observer,))  # type check at the call
        if self._observers is None:
            self._observers = []
        self._observers.append(observer)
        return self

    def no_observers(self) -> Self:
        """Attach no observer at all (not even the default logging one)."""
        self._observers = []
        return self

    def build(self) -> ProcessManager:
        manager = ProcessManager(
            self._name,
            auto_cleanup=self._auto_cleanup,
            shutdown_grace_period=self._grace,
            cancel_timeout=self._cancel_timeout,
            observers=self._observers,
            strategy=self._strategy,
            max_restarts=self._max_restarts,
            within=self._within,
            backoff=self._backoff,
            ordered=self._ordered,
        )
        for child, options in self._children:
            manager.insert(child, **options)
        return manager
