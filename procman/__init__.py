"""procman: an observability-first supervisor toolkit for asyncio.

The core imports nothing outside the standard library. See the README for
the guarantees and the observer backends.
"""

from __future__ import annotations

import logging as _logging

from procman._version import __version__
from procman.builder import ProcessManagerBuilder
from procman.context import (
    RunnableWithContext,
    RuntimeContext,
    SupportsStartWithContext,
    runnable,
    with_runtime_context,
)
from procman.errors import (
    ManagerStateError,
    ProcmanError,
    ReadyTimeoutError,
    RestartIntensityExceeded,
    TerminationSignal,
)
from procman.events import LifecycleEvent
from procman.guard import RuntimeGuard, RuntimeHandle, RuntimeTicker
from procman.handle import ManagerHandle
from procman.launch import run
from procman.manager import ProcessManager
from procman.observer import Fanout, Observer
from procman.policy import Restart, RestartBackoff, Strategy
from procman.runnable import (
    Control,
    ControlMessage,
    Custom,
    Next,
    ProcessControlHandler,
    ProcessOperation,
    Runnable,
    RuntimeControlMessage,
)
from procman.snapshot import ChildSnapshot, ChildState, ManagerPhase, SupervisorSnapshot

_logging.getLogger("procman").addHandler(_logging.NullHandler())

__all__ = [
    "ChildSnapshot",
    "ChildState",
    "Control",
    "ControlMessage",
    "Custom",
    "Fanout",
    "LifecycleEvent",
    "ManagerHandle",
    "ManagerPhase",
    "ManagerStateError",
    "Next",
    "Observer",
    "ProcessControlHandler",
    "ProcessManager",
    "ProcessManagerBuilder",
    "ProcessOperation",
    "ProcmanError",
    "ReadyTimeoutError",
    "Restart",
    "RestartBackoff",
    "RestartIntensityExceeded",
    "Runnable",
    "RunnableWithContext",
    "RuntimeContext",
    "RuntimeControlMessage",
    "RuntimeGuard",
    "RuntimeHandle",
    "RuntimeTicker",
    "Strategy",
    "SupervisorSnapshot",
    "SupportsStartWithContext",
    "TerminationSignal",
    "__version__",
    "run",
    "runnable",
    "with_runtime_context",
]
