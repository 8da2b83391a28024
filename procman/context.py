"""Function-style processes: RuntimeContext, RunnableWithContext, runnable(), and friends."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar, runtime_checkable

from procman.child import signal_ready
from procman.guard import RuntimeGuard, RuntimeHandle, RuntimeTicker
from procman.runnable import ProcessOperation, Runnable

__all__ = [
    "RunnableWithContext",
    "RuntimeContext",
    "SupportsStartWithContext",
    "runnable",
    "with_runtime_context",
]

T = TypeVar("T")


class RuntimeContext:
    """What a context-style process gets: its ticker and its own handle."""

    __slots__ = ("_handle", "_ticker")

    def __init__(self, ticker: RuntimeTicker, handle: RuntimeHandle) -> None:
        self._ticker = ticker
        self._handle = handle

    def tick(self, awaitable: Awaitable[T]) -> Coroutine[Any, Any, ProcessOperation[T]]:
        """Same as :meth:`procman.RuntimeTicker.tick` (await it).

        A plain method returning the ticker's coroutine: no second coroutine
        per tick.
        """
        return self._ticker.tick(awaitable)

    def ready(self) -> None:
        """Signal that this run is ready; see :meth:`procman.RuntimeGuard.ready`."""
        signal_ready()

    def handle(self) -> RuntimeHandle:
        """This process's own handle (to shut itself down, say)."""
        return self._handle

    @property
    def ticker(self) -> RuntimeTicker:
        return self._ticker


@runtime_checkable
class SupportsStartWithContext(Protocol):
    """Anything with ``async process_start_with_context(ctx)``."""

    async def process_start_with_context(self, ctx: RuntimeContext) -> None: ...


class RunnableWithContext(ABC):
    """Optional base class for context-style processes (duck typing works too)."""

    @abstractmethod
    async def process_start_with_context(self, ctx: RuntimeContext) -> None:
        """Run until done, using ``ctx.tick`` to react to control messages."""

    def process_name(self) -> str:
        return type(self).__name__


class _ContextRunnable(Runnable):
    """Adapts a start-with-context callable into a Runnable with its own guard."""

    __slots__ = ("_guard", "_name", "_start")

    def __init__(self, start: Callable[[RuntimeContext], Awaitable[None]], name: str) -> None:
        self._start = start
        self._name = name
        self._guard = RuntimeGuard()

    async def process_start(self) -> None:
        guard = self._guard
        await self._start(RuntimeContext(guard.runtime_ticker(), guard.handle()))

    def process_handle(self) -> RuntimeHandle:
        return self._guard.handle()

    def process_name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<{self._name} (context runnable)>"


def with_runtime_context(obj: Any) -> Runnable:
    """Wrap an object with ``async process_start_with_context(ctx)`` into a Runnable.

    The name is ``obj.process_name()`` when it has one, else its class name.
    """
    start = getattr(obj, "process_start_with_context", None)
    if not callable(start):
        raise TypeError(
            "with_runtime_context() needs an object with an async "
            f"process_start_with_context(ctx) method, got {type(obj).__name__}"
        )
    name_fn = getattr(obj, "process_name", None)
    name = name_fn() if callable(name_fn) else type(obj).__name__
    return _ContextRunnable(start, str(name))


def runnable(fn: Callable[[RuntimeContext], Awaitable[None]], name: str | None = None) -> Runnable:
    """Turn ``async def fn(ctx: RuntimeContext)`` into a Runnable (name: ``fn.__name__``)."""
    if not callable(fn):
        raise TypeError(f"runnable() needs an async function, got {type(fn).__name__}")
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"name must be a non-empty str, got {name!r}")
    label: str = name or str(getattr(fn, "__name__", type(fn).__name__))
    return _ContextRunnable(fn, label)
