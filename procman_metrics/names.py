"""Metric names and help texts: the public contract of procman_metrics.

Dashboards, alerts and outside tests depend on these Prometheus names; the
OpenTelemetry names map one to one (see :data:`OTEL_NAMES`). Label names,
OpenTelemetry attributes and label values are the concepts of
:mod:`procman.vocabulary` (``SUPERVISOR.label``, ``SUPERVISOR.attribute``,
``OUTCOMES``...), named there once for every backend.
"""

from __future__ import annotations

from typing import Final

from procman.vocabulary import OUTCOMES, RELOAD_RESULTS

__all__ = [
    "BUILD_INFO",
    "CHILDREN",
    "CHILD_EXITS",
    "CHILD_FAILURES",
    "CHILD_LAST_START",
    "CHILD_READY_DURATION",
    "CHILD_RESTARTS",
    "CHILD_STARTS",
    "CHILD_STOP_TIMEOUTS",
    "HELP",
    "OTEL_NAMES",
    "OUTCOMES",
    "RELOADS",
    "RELOAD_RESULTS",
    "SHUTDOWN_DURATION",
    "SUPERVISOR_RESTARTS",
]

CHILDREN: Final = "procman_children"
CHILD_STARTS: Final = "procman_child_starts_total"
CHILD_EXITS: Final = "procman_child_exits_total"
CHILD_FAILURES: Final = "procman_child_failures_total"
CHILD_RESTARTS: Final = "procman_child_restarts_total"
CHILD_STOP_TIMEOUTS: Final = "procman_child_stop_timeouts_total"
CHILD_LAST_START: Final = "procman_child_last_start_timestamp_seconds"
CHILD_READY_DURATION: Final = "procman_child_ready_duration_seconds"
SHUTDOWN_DURATION: Final = "procman_shutdown_duration_seconds"
RELOADS: Final = "procman_reloads_total"
SUPERVISOR_RESTARTS: Final = "procman_supervisor_restarts_total"
BUILD_INFO: Final = "procman_build_info"

HELP: Final[dict[str, str]] = {
    CHILDREN: "Children of each supervisor by state, read from the tree at scrape time.",
    CHILD_STARTS: "Runs started per child (the first start and every restart).",
    CHILD_EXITS: "Child runs ended, by outcome (ok, error, cancelled, timeout).",
    CHILD_FAILURES: "Child runs that raised, by exception class name.",
    CHILD_RESTARTS: "Restarts of each child (a RestartSupervisor or its manager's strategy).",
    CHILD_STOP_TIMEOUTS: "Children force-cancelled because they outlived the grace period.",
    CHILD_LAST_START: "Unix time of the latest start of each child.",
    CHILD_READY_DURATION: "Time from a child run's start to its readiness signal.",
    SHUTDOWN_DURATION: "Duration of graceful shutdowns, from request to the last child ending.",
    RELOADS: "Reload fan-outs completed, by result (ok, error, timeout, cancelled).",
    SUPERVISOR_RESTARTS: "Restart decisions of a supervisor's strategy (a cascade counts once).",
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
    CHILD_READY_DURATION: "procman.child.ready.duration",
    SHUTDOWN_DURATION: "procman.shutdown.duration",
    RELOADS: "procman.reloads",
    SUPERVISOR_RESTARTS: "procman.supervisor.restarts",
    BUILD_INFO: "procman.build.info",
}
"""Prometheus name -> OpenTelemetry instrument name."""
