"""OtelMetrics: the procman metrics through the OpenTelemetry metrics API.

For applications that export metrics by OTLP instead of being scraped. The
instruments mirror the Prometheus metrics one to one
(:data:`procman_metrics.names.OTEL_NAMES`):

* ``procman_children{supervisor,state}`` -> ``procman.children``
  (observable up-down counter, ``{child}``)
* ``procman_child_starts_total`` -> ``procman.child.starts`` (counter, ``{start}``)
* ``procman_child_exits_total{outcome}`` -> ``procman.child.exits`` (counter, ``{exit}``)
* ``procman_child_failures_total{error_type}`` -> ``procman.child.failures``
  (counter, ``{failure}``)
* ``procman_child_restarts_total`` -> ``procman.child.restarts`` (counter, ``{restart}``)
* ``procman_child_stop_timeouts_total`` -> ``procman.child.stop_timeouts``
  (counter, ``{timeout}``)
* ``procman_child_last_start_timestamp_seconds`` -> ``procman.child.last_start_timestamp``
  (observable gauge, ``s``)
* ``procman_child_ready_duration_seconds`` -> ``procman.child.ready.duration``
  (histogram, ``s``, the same bucket boundaries as an advisory)
* ``procman_shutdown_duration_seconds`` -> ``procman.shutdown.duration`` (histogram, ``s``,
  the same bucket boundaries as an advisory)
* ``procman_reloads_total{result}`` -> ``procman.reloads`` (counter, ``{reload}``)
* ``procman_supervisor_restarts_total{strategy}`` -> ``procman.supervisor.restarts``
  (counter, ``{restart}``)
* ``procman_build_info{version}`` -> ``procman.build.info`` (observable gauge, ``1``)

Attributes are the OpenTelemetry names of :mod:`procman.vocabulary`, the same
as on spans: ``procman.supervisor.name`` (tree path), ``procman.child.name``,
``procman.child.state``, ``procman.child.exit_reason`` (the outcome),
``procman.reload.result``, ``procman.restart.strategy``, ``procman.version``
and ``error.type`` (the exception's *bare* class name, as in the Prometheus
label: metrics follow the metrics rule, only spans qualify it).

Guarantees:

* Children by state are observed at collection time (the reader's thread;
  snapshots are taken on the tree's loop), never per event, for the roots
  this observer is attached to (``on_tree_start``) and those tracked.
  ``procman.children`` is an up-down counter rather than a gauge because it
  is a count that sums meaningfully across supervisors and instances, as the
  OpenTelemetry instrument guidelines recommend for counts.
* Per event: one dict lookup for the cached attribute set and one ``add`` or
  ``record``; the last start time is a dict write read by a callback.
* Exemplars are the SDK's business: events are delivered in the child's
  task, so with the default trace-based exemplar filter the active span is
  attached automatically.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from procman import ChildState, LifecycleEvent, __version__
from procman import vocabulary as v
from procman.events import (
    ProcessAbandoned,
    ProcessCancelled,
    ProcessFailed,
    ProcessReady,
    ProcessRestarted,
    ProcessStarted,
    ProcessStopped,
    ProcessStopTimedOut,
    ReloadCompleted,
    RestartRequested,
    ShutdownCompleted,
)
from procman.vocabulary import error_type
from procman_metrics._deps import OTEL_HINT
from procman_metrics.buckets import SHUTDOWN_BUCKETS
from procman_metrics.names import (
    BUILD_INFO,
    CHILD_EXITS,
    CHILD_FAILURES,
    CHILD_LAST_START,
    CHILD_READY_DURATION,
    CHILD_RESTARTS,
    CHILD_STARTS,
    CHILD_STOP_TIMEOUTS,
    CHILDREN,
    HELP,
    OTEL_NAMES,
    RELOADS,
    SHUTDOWN_DURATION,
    SUPERVISOR_RESTARTS,
)
from procman_metrics.observer_base import MetricsObserver
from procman_metrics.tracking import TrackedRoots

try:
    from opentelemetry.metrics import (
        CallbackOptions,
        MeterProvider,
        Observation,
        get_meter_provider,
    )
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(f"procman_metrics.OtelMetrics needs opentelemetry-api: {OTEL_HINT}") from exc

__all__ = ["OtelMetrics"]

SUPERVISOR = v.SUPERVISOR.attribute_key
CHILD = v.CHILD.attribute_key
STATE = v.STATE.attribute_key
OUTCOME = v.OUTCOME.attribute_key
ERROR_TYPE = v.ERROR_TYPE.attribute_key
RESULT = v.RELOAD_RESULT.attribute_key
STRATEGY = v.STRATEGY.attribute_key
VERSION = v.VERSION.attribute_key

Attributes = dict[str, str]


class OtelMetrics(MetricsObserver):
    """Observer recording the procman metrics on an OpenTelemetry meter.

    ``meter_provider`` defaults to the global one
    (``opentelemetry.metrics.get_meter_provider()``). The roots it is attached
    to are observed for ``procman.children`` once they start; :meth:`track`
    adds a tree it is not attached to.
    """

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        provider = get_meter_provider() if meter_provider is None else meter_provider
        meter = provider.get_meter("procman", __version__)
        self.roots = TrackedRoots()
        """The tracked root managers (observed at collection time, held weakly)."""
        self._starts = meter.create_counter(
            OTEL_NAMES[CHILD_STARTS], unit="{start}", description=HELP[CHILD_STARTS]
        )
        self._exits = meter.create_counter(
            OTEL_NAMES[CHILD_EXITS], unit="{exit}", description=HELP[CHILD_EXITS]
        )
        self._failures = meter.create_counter(
            OTEL_NAMES[CHILD_FAILURES], unit="{failure}", description=HELP[CHILD_FAILURES]
        )
        self._restarts = meter.create_counter(
            OTEL_NAMES[CHILD_RESTARTS], unit="{restart}", description=HELP[CHILD_RESTARTS]
        )
        self._stop_timeouts = meter.create_counter(
            OTEL_NAMES[CHILD_STOP_TIMEOUTS],
            unit="{timeout}",
            description=HELP[CHILD_STOP_TIMEOUTS],
        )
        self._reloads = meter.create_counter(
            OTEL_NAMES[RELOADS], unit="{reload}", description=HELP[RELOADS]
        )
        self._shutdown = meter.create_histogram(
            OTEL_NAMES[SHUTDOWN_DURATION],
            unit="s",
            description=HELP[SHUTDOWN_DURATION],
            explicit_bucket_boundaries_advisory=list(SHUTDOWN_BUCKETS),
        )
        self._ready = meter.create_histogram(
            OTEL_NAMES[CHILD_READY_DURATION],
            unit="s",
            description=HELP[CHILD_READY_DURATION],
            explicit_bucket_boundaries_advisory=list(SHUTDOWN_BUCKETS),
        )
        self._supervisor_restarts = meter.create_counter(
            OTEL_NAMES[SUPERVISOR_RESTARTS],
            unit="{restart}",
            description=HELP[SUPERVISOR_RESTARTS],
        )
        meter.create_observable_up_down_counter(
            OTEL_NAMES[CHILDREN],
            callbacks=[self._observe_children],
            unit="{child}",
            description=HELP[CHILDREN],
        )
        meter.create_observable_gauge(
            OTEL_NAMES[CHILD_LAST_START],
            callbacks=[self._observe_last_starts],
            unit="s",
            description=HELP[CHILD_LAST_START],
        )
        meter.create_observable_gauge(
            OTEL_NAMES[BUILD_INFO],
            callbacks=[self._observe_build_info],
            unit="1",
            description=HELP[BUILD_INFO],
        )
        self._attrs: dict[tuple[str, str], Attributes] = {}
        self._exit_attrs: dict[tuple[str, str, str], Attributes] = {}
        self._sup_attrs: dict[tuple[str, str], Attributes] = {}
        self._strategy_attrs: dict[tuple[str, str], Attributes] = {}
        self._last_starts: dict[tuple[str, str], float] = {}
        self._handlers: dict[type[LifecycleEvent], Callable[[Any], None]] = {
            ProcessStarted: self._on_started,
            ProcessStopped: self._on_exit,
            ProcessCancelled: self._on_exit,
            ProcessAbandoned: self._on_exit,
            ProcessFailed: self._on_failed,
            ProcessRestarted: self._on_restarted,
            ProcessStopTimedOut: self._on_stop_timeout,
            ShutdownCompleted: self._on_shutdown,
            ReloadCompleted: self._on_reload,
            ProcessReady: self._on_ready,
            RestartRequested: self._on_restart_requested,
        }

    def _child(self, supervisor: str, child: str) -> Attributes:
        key = (supervisor, child)
        attrs = self._attrs.get(key)
        if attrs is None:
            attrs = self._attrs[key] = {SUPERVISOR: supervisor, CHILD: child}
        return attrs

    def _on_started(self, event: ProcessStarted) -> None:
        self._starts.add(1, self._child(event.supervisor, event.child))
        self._last_starts[(event.supervisor, event.child)] = time.time()

    def _on_exit(self, event: ProcessStopped | ProcessCancelled | ProcessAbandoned) -> None:
        key = (event.supervisor, event.child, event.outcome)
        attrs = self._exit_attrs.get(key)
        if attrs is None:
            attrs = self._exit_attrs[key] = {
                **self._child(event.supervisor, event.child),
                OUTCOME: event.outcome,
            }
        self._exits.add(1, attrs)

    def _on_failed(self, event: ProcessFailed) -> None:
        self._on_exit(event)  # type: ignore[arg-type]
        kind = error_type(event.exception)
        attrs = {**self._child(event.supervisor, event.child), ERROR_TYPE: kind}
        self._failures.add(1, attrs)

    def _on_restarted(self, event: ProcessRestarted) -> None:
        self._restarts.add(1, self._child(event.supervisor, event.child))

    def _on_stop_timeout(self, event: ProcessStopTimedOut) -> None:
        self._stop_timeouts.add(1, self._child(event.supervisor, event.child))

    def _supervisor(self, supervisor: str, result: str = "") -> Attributes:
        key = (supervisor, result)
        attrs = self._sup_attrs.get(key)
        if attrs is None:
            attrs = {SUPERVISOR: supervisor, RESULT: result} if result else {SUPERVISOR: supervisor}
            self._sup_attrs[key] = attrs
        return attrs

    def _on_shutdown(self, event: ShutdownCompleted) -> None:
        self._shutdown.record(max(event.duration, 0.0), self._supervisor(event.supervisor))

    def _on_reload(self, event: ReloadCompleted) -> None:
        self._reloads.add(1, self._supervisor(event.supervisor, event.result))

    def _on_ready(self, event: ProcessReady) -> None:
        self._ready.record(max(event.duration, 0.0), self._supervisor(event.supervisor))

    def _on_restart_requested(self, event: RestartRequested) -> None:
        key = (event.supervisor, event.strategy)
        attrs = self._strategy_attrs.get(key)
        if attrs is None:
            attrs = self._strategy_attrs[key] = {
                SUPERVISOR: event.supervisor,
                STRATEGY: event.strategy,
            }
        self._supervisor_restarts.add(1, attrs)

    # -- observable callbacks (reader thread) ------------------------------------------
    def _observe_children(self, options: CallbackOptions) -> Iterable[Observation]:
        seen: set[str] = set()
        for root in self.roots.snapshots():
            for sup in root.walk():
                if sup.path in seen:
                    continue
                seen.add(sup.path)
                counts = dict.fromkeys(ChildState, 0)
                for child in sup.children:
                    counts[child.state] += 1
                for state, count in counts.items():
                    yield Observation(count, {SUPERVISOR: sup.path, STATE: state.value})

    def _observe_last_starts(self, options: CallbackOptions) -> Iterable[Observation]:
        for (supervisor, child), when in list(self._last_starts.items()):
            yield Observation(when, {SUPERVISOR: supervisor, CHILD: child})

    def _observe_build_info(self, options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(1, {VERSION: __version__})

    def __repr__(self) -> str:
        return f"<OtelMetrics roots={len(self.roots)}>"
