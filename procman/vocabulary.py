"""procman's vocabulary: every name a concept has in events, logs, metrics and spans.

Each concept is named once here and every backend imports the name from this
module: the event field (:mod:`procman.events`), the stdlib log field (the
``extra`` key of a record of :class:`~procman.observe.LoggingObserver`), the
loguru field (the key in ``record["extra"]`` of
:class:`~procman.observe.LoguruObserver`), the Prometheus label
(:class:`~procman_metrics.PrometheusMetrics`) and the OpenTelemetry attribute
(spans of :class:`~procman.observe.OtelTracingObserver` and the instruments of
:class:`~procman_metrics.OtelMetrics`: one attribute name for both).

Rules that hold for every concept:

* the stdlib log field is ``procman_`` + the loguru field (stdlib ``extra``
  keys share the namespace of :class:`logging.LogRecord` attributes, hence
  the prefix; loguru's ``extra`` is procman's own dict);
* the value is the same in every backend. The one documented exception is
  ``error.type`` on *spans*, the fully qualified class name
  (:func:`qualified_error_type`, the OpenTelemetry convention); logs, the
  Prometheus label and the OpenTelemetry metric attribute use the bare class
  name (:func:`error_type`, ``type(exc).__name__``).

The Prometheus metric and label names and the span names and the attributes
``procman.supervisor.name``, ``procman.child.name``,
``procman.child.restart_count``, ``procman.child.exit_reason`` and
``error.type`` are a contract (dashboards, alerts, outside tests).

Only the standard library is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "ATTEMPT",
    "CHILD",
    "CHILDREN",
    "CHILD_EXIT_SPAN",
    "CHILD_RESTART_SPAN",
    "CHILD_RUN_SPAN",
    "CHILD_START_SPAN",
    "CONCEPTS",
    "Concept",
    "DELAY",
    "DURATION",
    "ERROR",
    "ERRORS",
    "ERROR_TYPE",
    "EVENT",
    "FORCED",
    "GRACE_PERIOD",
    "INTERRUPTED",
    "OUTCOME",
    "OUTCOMES",
    "READY_SPAN_EVENT",
    "REASON",
    "RELOAD_CHILDREN",
    "RELOAD_RESULT",
    "RELOAD_RESULTS",
    "RELOAD_SPAN",
    "RESTART_CHILDREN",
    "RESTART_COUNT",
    "RESTART_RESULT",
    "RESTART_RESULTS",
    "RESTART_SPAN",
    "SHUTDOWN_REASONS",
    "SHUTDOWN_SPAN",
    "SPAN_ID",
    "STATE",
    "STOP_TIMEOUT_SPAN_EVENT",
    "STRATEGIES",
    "STRATEGY",
    "SUPERVISOR",
    "TRACE_ID",
    "TRIGGER",
    "VERSION",
    "error_type",
    "qualified_error_type",
]

_LOG_PREFIX = "procman_"


@dataclass(frozen=True, slots=True)
class Concept:
    """One concept and its name in each backend (None: the backend does not report it).

    ``event_field`` is the attribute of the events that carry the concept,
    ``log_field`` the stdlib ``extra`` key, ``loguru_field`` the loguru
    ``record["extra"]`` key, ``label`` the Prometheus label and
    ``attribute`` the OpenTelemetry attribute (spans and OTel metrics).
    """

    key: str
    event_field: str | None
    label: str | None
    attribute: str | None
    doc: str
    logged: bool = True
    title: str = ""
    """The row name in the README table (default: ``key``)."""
    stdlib_field: str = ""
    """The stdlib field when it is not ``procman_`` + ``key``."""

    @property
    def loguru_field(self) -> str | None:
        """The key in a loguru record's ``extra``."""
        return self.key if self.logged else None

    @property
    def log_field(self) -> str | None:
        """The ``extra`` key (record attribute) of a stdlib log record."""
        if not self.logged:
            return None
        return self.stdlib_field or _LOG_PREFIX + self.key

    @property
    def log_key(self) -> str:
        """:attr:`log_field` for a logged concept (ValueError otherwise)."""
        field = self.log_field
        if field is None:
            raise ValueError(f"{self.key} is not a log field")
        return field

    @property
    def loguru_key(self) -> str:
        """:attr:`loguru_field` for a logged concept (ValueError otherwise)."""
        field = self.loguru_field
        if field is None:
            raise ValueError(f"{self.key} is not a loguru field")
        return field

    @property
    def attribute_key(self) -> str:
        """:attr:`attribute` for a concept that has one (ValueError otherwise)."""
        if self.attribute is None:
            raise ValueError(f"{self.key} is not an OpenTelemetry attribute")
        return self.attribute

    @property
    def label_key(self) -> str:
        """:attr:`label` for a concept that is a Prometheus label (ValueError otherwise)."""
        if self.label is None:
            raise ValueError(f"{self.key} is not a Prometheus label")
        return self.label

    @property
    def name(self) -> str:
        """The concept's name in the README table."""
        return self.title or self.key


# -- where and who -----------------------------------------------------------------------
EVENT: Final = Concept(
    "event", "name", None, None, "the event name, e.g. procman.child.failed (a class attribute)"
)
SUPERVISOR: Final = Concept(
    "supervisor",
    "supervisor",
    "supervisor",
    "procman.supervisor.name",
    "the supervisor's path in the tree (app/db)",
)
CHILD: Final = Concept(
    "child", "child", "child", "procman.child.name", "the child's name (child events only)"
)
STATE: Final = Concept(
    "state",
    None,
    "state",
    "procman.child.state",
    "a child's state in a snapshot (starting, running, ...)",
    logged=False,
)
VERSION: Final = Concept(
    "version", None, "version", "procman.version", "the procman version", logged=False
)

# -- one run ---------------------------------------------------------------------------------
RESTART_COUNT: Final = Concept(
    "restart_count",
    "restart_count",
    None,
    "procman.child.restart_count",
    "how many times this child was restarted before this run",
)
DURATION: Final = Concept(
    "duration",
    "duration",
    None,
    "procman.child.duration",
    "seconds since the run (or the operation) started",
)
OUTCOME: Final = Concept(
    "outcome",
    "outcome",
    "outcome",
    "procman.child.exit_reason",
    "how a run ended: ok, error, cancelled, timeout",
)
ERROR_TYPE: Final = Concept(
    "error_type",
    "error_type",
    "error_type",
    "error.type",
    "the exception's class: bare name in logs and metrics, fully qualified on spans",
)
ERROR: Final = Concept(
    "error",
    "exception",
    None,
    None,
    "the exception as 'Class: message' (logs only; never a label)",
)

# -- restarts --------------------------------------------------------------------------------
ATTEMPT: Final = Concept(
    "attempt", "attempt", None, "procman.restart.attempt", "the restart attempt (1, 2, ...)"
)
DELAY: Final = Concept(
    "delay", "delay", None, "procman.restart.delay", "the backoff before a restart, in seconds"
)
STRATEGY: Final = Concept(
    "strategy",
    "strategy",
    "strategy",
    "procman.restart.strategy",
    "the restart strategy: one_for_one, one_for_all, rest_for_one",
)
TRIGGER: Final = Concept(
    "trigger", "trigger", None, "procman.restart.trigger", "the child whose end caused a restart"
)
RESTART_CHILDREN: Final = Concept(
    "children",
    "children",
    None,
    "procman.restart.children",
    "children restarted by one decision (the event has their names, logs and spans the count)",
    title="children (restart)",
)
RESTART_RESULT: Final = Concept(
    "result",
    "result",
    None,
    "procman.restart.result",
    "how a restart decision ended: ok, cancelled",
    title="result (restart)",
)
INTERRUPTED: Final = Concept(
    "interrupted",
    None,
    None,
    "procman.restart.interrupted",
    "a restart backoff cut short by a shutdown (spans only)",
    logged=False,
)

# -- shutdown and reload -----------------------------------------------------------------------
REASON: Final = Concept(
    "reason",
    "reason",
    None,
    "procman.shutdown.reason",
    "why a shutdown began: requested, failure, cancelled",
)
CHILDREN: Final = Concept(
    "children",
    "children",
    None,
    "procman.shutdown.children",
    "children asked to stop by a shutdown",
    title="children (shutdown)",
)
FORCED: Final = Concept(
    "forced",
    "forced",
    None,
    "procman.shutdown.forced_children",
    "children force-cancelled after the grace period",
)
GRACE_PERIOD: Final = Concept(
    "grace_period",
    "grace_period",
    None,
    "procman.shutdown.grace_period",
    "the grace period a child outlived, in seconds",
)
RELOAD_CHILDREN: Final = Concept(
    "children",
    "children",
    None,
    "procman.reload.children",
    "children a reload was forwarded to",
    title="children (reload)",
)
RELOAD_RESULT: Final = Concept(
    "result",
    "result",
    "result",
    "procman.reload.result",
    "how a reload ended: ok, error, timeout, cancelled",
    title="result (reload)",
)
ERRORS: Final = Concept(
    "errors", "errors", None, "procman.reload.errors", "reload handlers that raised"
)

# -- trace correlation (loguru; stdlib records get otelTraceID/otelSpanID from a filter) ------
TRACE_ID: Final = Concept(
    "trace_id",
    None,
    None,
    None,
    "the current span's trace id, 32 lower-case hex digits (stdlib: TraceContextFilter)",
    stdlib_field="otelTraceID",
)
SPAN_ID: Final = Concept(
    "span_id",
    None,
    None,
    None,
    "the current span's id, 16 lower-case hex digits (stdlib: TraceContextFilter)",
    stdlib_field="otelSpanID",
)

CONCEPTS: Final[tuple[Concept, ...]] = (
    EVENT,
    SUPERVISOR,
    CHILD,
    STATE,
    VERSION,
    RESTART_COUNT,
    DURATION,
    OUTCOME,
    ERROR_TYPE,
    ERROR,
    ATTEMPT,
    DELAY,
    STRATEGY,
    TRIGGER,
    RESTART_CHILDREN,
    RESTART_RESULT,
    INTERRUPTED,
    REASON,
    CHILDREN,
    FORCED,
    GRACE_PERIOD,
    RELOAD_CHILDREN,
    RELOAD_RESULT,
    ERRORS,
    TRACE_ID,
    SPAN_ID,
)
"""Every concept, in the order of the README table."""

# -- values ----------------------------------------------------------------------------------
OUTCOMES: Final = ("ok", "error", "cancelled", "timeout")
"""Values of :data:`OUTCOME` (``outcome``; span attribute ``procman.child.exit_reason``)."""

RELOAD_RESULTS: Final = ("ok", "error", "timeout", "cancelled")
"""Values of :data:`RELOAD_RESULT` (``ReloadCompleted.result``, label ``result``)."""

RESTART_RESULTS: Final = ("ok", "cancelled")
"""Values of :data:`RESTART_RESULT` (``RestartCompleted.result``)."""

SHUTDOWN_REASONS: Final = ("requested", "failure", "cancelled")
"""Values of :data:`REASON` (``ShutdownRequested.reason``)."""

STRATEGIES: Final = ("one_for_one", "one_for_all", "rest_for_one")
"""Values of :data:`STRATEGY`."""

# -- span names and span event names ------------------------------------------------------------
CHILD_RUN_SPAN: Final = "procman.child.run"
CHILD_START_SPAN: Final = "procman.child.start"
CHILD_EXIT_SPAN: Final = "procman.child.exit"
CHILD_RESTART_SPAN: Final = "procman.child.restart"
SHUTDOWN_SPAN: Final = "procman.shutdown"
RELOAD_SPAN: Final = "procman.reload"
RESTART_SPAN: Final = "procman.restart"
READY_SPAN_EVENT: Final = "procman.child.ready"
STOP_TIMEOUT_SPAN_EVENT: Final = "procman.child.stop_timeout"


# -- error types ---------------------------------------------------------------------------------
def error_type(exc: BaseException | type[BaseException]) -> str:
    """The bare class name (``ConnectionError``): logs, Prometheus labels, OTel metrics."""
    cls = exc if isinstance(exc, type) else type(exc)
    return cls.__name__


def qualified_error_type(exc: BaseException | type[BaseException]) -> str:
    """The span ``error.type``: ``module.QualName``, builtins without ``builtins.``."""
    cls = exc if isinstance(exc, type) else type(exc)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"
