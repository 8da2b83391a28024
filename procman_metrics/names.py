"""Metric names, help texts and label names: the public contract of procman_metrics.

Dashboards, alerts and outside tests depend on these Prometheus names; the
OpenTelemetry names map one to one (see :data:`OTEL_NAMES`).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BUILD_INFO",
    "CHILDREN",
    "CHILD_EXITS",
    "CHILD_FAILURES",
    "CHILD_LAST_START",
    "CHILD_RESTARTS",
    "CHILD_STARTS",
    "CHILD_STOP_TIMEOUTS",
    "HELP",
    "OTEL_ATTRIBUTES",
    "OTEL_NAMES",
    "OUTCOMES",
    "RELOADS",
    "RELOAD_RESULTS",
    "SHUTDOWN_DURATION",
]

CHILDREN: Final = "procman_children"
CHILD_STARTS: Final = "procman_child_starts_total"
CHILD_EXITS: Final = "procman_child_exits_total"
CHILD_FAILURES: Final = "procman_child_failures_total"
CHILD_RESTARTS: Final = "procman_child_restarts_total"
CHILD_STOP_TIMEOUTS: Final = "procman_child_stop_timeouts_total"
CHILD_LAST_START: Final = "procman_child_last_start_timestamp_seconds"
SHUTDOWN_DURATION: Final = "procman_shutdown_duration_seconds"
RELOADS: Final = "procman_reloads_total"
BUILD_INFO: Final = "procman_build_info"

OUTCOMES: Final = ("ok", "error", "cancelled", "timeout")
"""Values of the ``outcome`` label of :data:`CHILD_EXITS`."""

RELOAD_RESULTS: Final = ("ok", "error", "timeout")
"""Values of the ``result`` label of :data:`RELOADS`."""

HELP: Final[dict[str, str]] = {
    CHILDREN: "Children of each supervisor by state, read from the tree at scrape time.",
    CHILD_STARTS: "Runs started per child (the first start and every restart).",
    CHILD_EXITS: "Child runs ended, by outcome (ok, error, cancelled, timeout).",
    CHILD_FAILURES: "Child runs that raised, by exception class name.",
    CHILD_RESTARTS: "Restarts performed by a RestartSupervisor after a failure.",
    CHILD_STOP_TIMEOUTS: "Children force-cancelled because they outlived the grace period.",
    CHILD_LAST_START: "Unix time of the latest start of each child.",
    SHUTDOWN_DURATION: "Duration of graceful shutdowns, from request to the last child ending.",
    RELOADS: "Reload fan-outs completed, by result (ok, error, timeout).",
    BUILD_INFO: "Always 1; the version label is the procman version.",
}

OTEL_NAMES: Final[dict[str, str]] = {
    CHILDREN: "procman.children",
    CHILD_STARTS: "procman.child.starts",
    CHILD_EXITS: "procman.child.exits",
    CHILD_FAILURES: "procman.child.failures",
    CHILD_RESTARTS: "procman.child.restarts",
    CHILD_STOP_TIMEOUTS: "procman.child.stop_timeouts",
    CHILD_LAST_START: "procman.child.last_start_timestamp",
    SHUTDOWN_DURATION: "procman.shutdown.duration",
    RELOADS: "procman.reloads",
    BUILD_INFO: "procman.build.info",
}
"""Prometheus name -> OpenTelemetry instrument name."""

OTEL_ATTRIBUTES: Final[dict[str, str]] = {
    "supervisor": "procman.supervisor.name",
    "child": "procman.child.name",
    "state": "procman.child.state",
    "outcome": "procman.child.outcome",
    "error_type": "error.type",
    "result": "procman.reload.result",
    "version": "procman.version",
}
"""Prometheus label -> OpenTelemetry attribute (``error.type`` is the bare class name)."""
