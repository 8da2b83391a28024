"""The process protocol: runnables, control handlers, control messages, tick results.

A *process* is a long-lived coroutine (``Runnable.process_start``) plus a
handler through which a supervisor asks it to shut down or reload
(``Runnable.process_handle``).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

__all__ = [
    "Control",
    "ControlMessage",
    "Custom",
    "Next",
    "ProcessControlHandler",
    "ProcessOperation",
    "Runnable",
    "RuntimeControlMessage",
]

T = TypeVar("T")


class RuntimeControlMessage(enum.Enum):
    """The two control messages every process understands."""

    SHUTDOWN = "shutdown"
    RELOAD = "reload"


@dataclass(frozen=True, slots=True)
class Custom:
    """An application-defined control message carrying any ``payload``."""

    payload: Any


ControlMessage: TypeAlias = RuntimeControlMessage | Custom
"""What a :class:`Control` result carries."""


@dataclass(frozen=True, slots=True)
class Next(Generic[T]):
    """The awaited operation finished first; ``value`` is its result."""

    value: T


@dataclass(frozen=True, slots=True)
class Control:
    """A control message arrived before the awaited operation finished."""

    message: ControlMessage


ProcessOperation: TypeAlias = Next[T] | Control
"""The result of :meth:`procman.RuntimeTicker.tick`."""


class ProcessControlHandler(ABC):
    """How a supervisor talks to a running process.

    Implementations must be safe to call before the process started (the
    request is then kept or ignored, as the implementation documents) and
    after it ended (a no-op).
    """

    @abstractmethod
    async def shutdown(self) -> None:
        """Ask the process to stop gracefully."""

    @abstractmethod
    async def reload(self) -> None:
        """Ask the process to reload its configuration."""

    def control_nowait(self, message: RuntimeControlMessage) -> bool:
        """Deliver ``message`` synchronously if this handler can; return whether it did.

        Supervisors call this first and only await :meth:`shutdown` /
        :meth:`reload` when it returns ``False`` (the default), which saves a
        coroutine per child on the shutdown path. Override it only when the
        delivery really needs no awaiting.
        """
        return False


class Runnable(ABC):
    """A long-lived process that a :class:`procman.ProcessManager` supervises.

    ``process_start`` runs until the process is done: returning means a
    clean stop, raising means failure (the supervisor then shuts the tree
    down and re-raises).
    """

    @abstractmethod
    async def process_start(self) -> None:
        """Run the process until it ends; raise to report a failure."""

    @abstractmethod
    def process_handle(self) -> ProcessControlHandler:
        """The handler a supervisor uses to shut down or reload this process."""

    def process_name(self) -> str:
        """A short human-readable name (default: the class name)."""
        return type(self).__name__
