"""What a runnable's type is to its manager: leaf, nested manager, wrapper (internal)."""

from __future__ import annotations

from procman._state import ManagerState

__all__ = ["EXPOSES", "KINDS", "LEAF", "MANAGER", "REPORTS_RUNS", "kind_of"]

# What a runnable's type is to its manager, looked up once per type (an
# isinstance against the ABC and a getattr cost more than the rest of a child):
LEAF = 0
MANAGER = 1  # a ProcessManager: nested in snapshots, ready when its children are
EXPOSES = 2  # lowlevel.ExposesManager: procman_nested_manager() gives the nested tree
REPORTS_RUNS = 4  # lowlevel.ReportsOwnRuns: emits its runs' events itself
KINDS: dict[type, int] = {}


def kind_of(cls: type) -> int:
    """The flags above for a runnable type (cached)."""
    kind = KINDS.get(cls)
    if kind is None:
        kind = LEAF
        if issubclass(cls, ManagerState):
            kind |= MANAGER
        elif callable(getattr(cls, "procman_nested_manager", None)):
            kind |= EXPOSES
        if getattr(cls, "procman_reports_runs", False):
            kind |= REPORTS_RUNS
        KINDS[cls] = kind
    return kind
