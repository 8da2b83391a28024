"""procman.lowlevel: the extension surface for wrappers and backends.

Applications use the top-level :mod:`procman` namespace. This namespace
holds what a *wrapper* of runnables (such as
:class:`procman.builtin.RestartSupervisor`) or a backend needs, as explicit,
documented protocols; ``RestartSupervisor`` uses nothing a user's own
wrapper could not (trio's ``lowlevel`` namespace is the model).

Finding where you run:

* :func:`current_supervisor` -- the supervisor whose children run in the
  current context (None outside supervision).
* :func:`current_record` -- the mutable bookkeeping record of the child
  whose task is running (None outside a supervised child's own task). A
  wrapper updates ``restart_count``, ``state`` and ``run_start`` (a
  :func:`time.monotonic` time; ``started_at`` is its wall-clock view) on it.
* :func:`signal_ready` -- what ``guard.ready()`` and ``ctx.ready()`` call.

Reporting runs yourself (:class:`ReportsOwnRuns`): a runnable whose class
sets ``procman_reports_runs = True`` is started without the manager's
observation wrapper; it must then run each run of its inner child through
:func:`run_observed` with its record, so every run still gets exactly one
``ProcessStarted`` and one terminal event.

Exposing an inner tree (:class:`ExposesManager`): a runnable with a
``procman_nested_manager()`` method returning a
:class:`procman.ProcessManager` (or None) has that manager's subtree in its
snapshot (``ChildSnapshot.supervisor``), so ``/readyz``, the
``procman_children`` gauge and ``/tree`` see through the wrapper.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from procman.child import (
    STANDALONE,
    ChildRecord,
    Owner,
    current_supervisor,
    run_observed,
    signal_ready,
)
from procman.child import current_child as current_record

if TYPE_CHECKING:
    from procman.manager import ProcessManager

__all__ = [
    "STANDALONE",
    "ChildRecord",
    "ExposesManager",
    "Owner",
    "ReportsOwnRuns",
    "current_record",
    "current_supervisor",
    "run_observed",
    "signal_ready",
]


@runtime_checkable
class ReportsOwnRuns(Protocol):
    """A runnable that reports its runs itself with :func:`run_observed`."""

    procman_reports_runs: ClassVar[bool]


@runtime_checkable
class ExposesManager(Protocol):
    """A runnable wrapping a :class:`procman.ProcessManager` whose subtree snapshots include."""

    def procman_nested_manager(self) -> ProcessManager | None: ...
