"""PrometheusMetrics: an observer maintaining procman's Prometheus metrics.

Guarantees:

* Metric names are the contract in :mod:`procman_metrics.names`, label
  names and values the concepts of :mod:`procman.vocabulary`: supervisor
  paths, child names, the fixed ``outcome``, ``result`` and ``strategy``
  sets and exception *bare class* names (never messages or ids).
* The six per-child metrics (starts, exits, failures, restarts, stop
  timeouts, last start) are counted in one plain object per child and read at
  scrape time (:mod:`procman_metrics.child_series`; prometheus_client's own
  series in multiprocess mode), so a hot event costs one dict lookup and one
  locked increment, and a big tree keeps no prometheus_client object per
  child. The per-supervisor series (shutdown and readiness histograms,
  reloads, restart decisions) are prometheus_client series, cached by label.
* ``procman_children`` is not updated per event: the tree of every root this
  observer is attached to (``on_tree_start``) and of every root given to
  :meth:`PrometheusMetrics.track` is read at scrape time.
* With ``init_series=True`` (the default) the series of rare events exist
  with value 0 from the moment a child is scheduled: per child its restarts
  and stop timeouts, per supervisor its reloads by every result, its
  restart decisions by every strategy (a manager's strategy is not in the
  events before its first restart decision) and its shutdown histogram.
  ``rate()``, ``increase()`` and the alerts then see the *first* restart,
  stop timeout or reload instead of a series appearing at 1. Exits and
  failures are created when they happen (exits by four outcomes for every
  child would double the exposition of a big tree, and exception class
  names are not known in advance), and so is the readiness histogram.
* When the OpenTelemetry API is importable and a valid span is current,
  counters and the histograms carry ``trace_id``/``span_id`` as an
  exemplar (shown in OpenMetrics output).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from procman import LifecycleEvent, __version__
from procman.events import (
    ProcessAbandoned,
    ProcessCancelled,
    ProcessFailed,
    ProcessReady,
    ProcessRestarted,
    ProcessStarted,
    ProcessStarting,
    ProcessStopped,
    ProcessStopTimedOut,
    ReloadCompleted,
    RestartRequested,
    ShutdownCompleted,
)
from procman.vocabulary import (
    RELOAD_RESULT,
    RELOAD_RESULTS,
    STRATEGIES,
    STRATEGY,
    SUPERVISOR,
    VERSION,
    error_type,
)
from procman_metrics._deps import PROMETHEUS_HINT
from procman_metrics.buckets import SHUTDOWN_BUCKETS
from procman_metrics.exemplars import exemplar_source
from procman_metrics.names import (
    BUILD_INFO,
    CHILD_READY_DURATION,
    HELP,
    RELOADS,
    SHUTDOWN_DURATION,
    SUPERVISOR_RESTARTS,
)
from procman_metrics.observer_base import MetricsObserver
from procman_metrics.tracking import TrackedRoots

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(f"procman_metrics needs prometheus_client: {PROMETHEUS_HINT}") from exc

from procman_metrics.child_series import (
    ClientSeries,
    ClientSeriesFactory,
    Tally,
    TallyCollector,
    multiprocess_mode,
)
from procman_metrics.collector import ChildrenCollector
from procman_metrics.increment import inc

ChildSeries = Tally | ClientSeries

__all__ = ["READY_BUCKETS", "PrometheusMetrics"]

READY_BUCKETS = SHUTDOWN_BUCKETS
"""Buckets of ``procman_child_ready_duration_seconds``: 1 ms to 5 min, as for shutdowns."""

_SUPERVISOR = (SUPERVISOR.label_key,)


class _SupervisorSeries:
    """The cached series of one supervisor."""

    __slots__ = ("ready", "reloads", "restarts", "shutdown")

    def __init__(self, metrics: PrometheusMetrics, supervisor: str, init: bool) -> None:
        self.shutdown: Any = metrics._shutdown.labels(supervisor) if init else None
        reloads = metrics._reloads
        self.reloads: dict[str, Any] = (
            {r: reloads.labels(supervisor, r) for r in RELOAD_RESULTS} if init else {}
        )
        self.ready: Any = None
        restarts = metrics._supervisor_restarts
        self.restarts: dict[str, Any] = (
            {strategy: restarts.labels(supervisor, strategy) for strategy in STRATEGIES}
            if init
            else {}
        )


class PrometheusMetrics(MetricsObserver):
    """Observer exporting the procman metrics to a prometheus_client registry.

    Attach it like any observer (``ProcessManager(..., observers=[metrics])``):
    when the root starts it is tracked (``on_tree_start``), so scrapes report
    its children by state; :meth:`track` adds a tree it is not attached to.
    ``registry`` defaults to ``prometheus_client.REGISTRY``; one instance per
    registry (registering twice raises ``ValueError``).
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, init_series: bool = True
    ) -> None:
        self.registry: CollectorRegistry = REGISTRY if registry is None else registry
        self._init_series = init_series
        self.roots = TrackedRoots()
        """The tracked root managers (read at scrape time, held weakly)."""
        self._registered: list[Collector] = []
        self._children: dict[tuple[str, str], ChildSeries] = {}
        self._lock = threading.Lock()
        """Counting may happen on several loops' threads (one observer, several trees)."""
        try:
            if multiprocess_mode():  # values must live in prometheus_client's files
                factory = ClientSeriesFactory()
                for collector in factory.collectors():
                    self._add(collector)
                self._new_series: Callable[[str, str, bool], ChildSeries] = factory
            else:
                self._add(TallyCollector(self._children))
                self._new_series = lambda _supervisor, _child, init: Tally(init)
            self._shutdown = self._add(
                Histogram(
                    SHUTDOWN_DURATION,
                    HELP[SHUTDOWN_DURATION],
                    _SUPERVISOR,
                    buckets=SHUTDOWN_BUCKETS,
                    registry=None,
                )
            )
            self._reloads = self._add(
                Counter(
                    RELOADS,
                    HELP[RELOADS],
                    (*_SUPERVISOR, RELOAD_RESULT.label_key),
                    registry=None,
                )
            )
            self._ready = self._add(
                Histogram(
                    CHILD_READY_DURATION,
                    HELP[CHILD_READY_DURATION],
                    _SUPERVISOR,
                    buckets=READY_BUCKETS,
                    registry=None,
                )
            )
            self._supervisor_restarts = self._add(
                Counter(
                    SUPERVISOR_RESTARTS,
                    HELP[SUPERVISOR_RESTARTS],
                    (*_SUPERVISOR, STRATEGY.label_key),
                    registry=None,
                )
            )
            build_info = self._add(
                Gauge(
                    BUILD_INFO,
                    HELP[BUILD_INFO],
                    (VERSION.label_key,),
                    registry=None,
                    multiprocess_mode="max",
                )
            )
            self.children_collector = self._add(ChildrenCollector(self.roots))
        except ValueError as exc:
            self.close()
            raise ValueError(
                f"{exc}: the procman metrics are already registered in this registry; "
                "create one PrometheusMetrics per registry (or pass registry=CollectorRegistry())"
            ) from exc
        build_info.labels(__version__).set(1)
        self._supervisors: dict[str, _SupervisorSeries] = {}
        self._exemplar = exemplar_source()
        self._handlers: dict[type[LifecycleEvent], Callable[[Any], None]] = {
            ProcessStarting: self._on_starting,
            ProcessStarted: self._on_started,
            ProcessStopped: self._on_exit,
            ProcessCancelled: self._on_exit,
            ProcessAbandoned: self._on_exit,
            ProcessFailed: self._on_exit,
            ProcessRestarted: self._on_restarted,
            ProcessStopTimedOut: self._on_stop_timeout,
            ShutdownCompleted: self._on_shutdown,
            ReloadCompleted: self._on_reload,
            ProcessReady: self._on_ready,
            RestartRequested: self._on_restart_requested,
        }
        if not init_series:  # ProcessStarting only initialises series: not even built then
            del self._handlers[ProcessStarting]

    children_collector: ChildrenCollector
    """The scrape-time ``procman_children`` collector, already in :attr:`registry`.

    Register it in another registry too when that one is what gets served (for
    example next to a ``MultiProcessCollector``; see the README section on multiprocess mode).
    """

    def _add(self, collector: Any) -> Any:
        self.registry.register(collector)
        self._registered.append(collector)
        return collector

    def close(self) -> None:
        """Unregister every procman metric from the registry (the instance is then inert)."""
        for collector in reversed(self._registered):
            self.registry.unregister(collector)
        self._registered.clear()

    def _child(self, supervisor: str, child: str) -> ChildSeries:
        key = (supervisor, child)
        series = self._children.get(key)
        if series is None:
            init = self._init_series
            with self._lock:
                series = self._children.get(key)
                if series is None:
                    series = self._children[key] = self._new_series(supervisor, child, init)
            if init and supervisor not in self._supervisors:
                self._supervisor(supervisor)
        return series

    def wants(self, event_type: type[LifecycleEvent]) -> bool:
        """Only the events that change a metric are built for this observer.

        Not even ``ProcessStarting``: the series it initialises are initialised
        by the child's first event that reaches a handler (its ``ProcessStarted``,
        or its end when it never ran), one event per child fewer. Delivered by
        hand, it still initialises them.
        """
        return event_type is not ProcessStarting and event_type in self._handlers

    def _supervisor(self, supervisor: str) -> _SupervisorSeries:
        series = self._supervisors.get(supervisor)
        if series is None:
            series = self._supervisors[supervisor] = _SupervisorSeries(
                self, supervisor, self._init_series
            )
        return series

    def _on_starting(self, event: ProcessStarting) -> None:
        if self._init_series:
            self._child(event.supervisor, event.child)
            self._supervisor(event.supervisor)

    def _on_started(self, event: ProcessStarted) -> None:
        series = self._children.get((event.supervisor, event.child))
        if series is None:
            series = self._child(event.supervisor, event.child)
        ex = self._exemplar
        exemplar = None if ex is None else ex()
        now = time.time()
        with self._lock:
            series.started(now, exemplar)

    def _on_exit(
        self, event: ProcessStopped | ProcessCancelled | ProcessAbandoned | ProcessFailed
    ) -> None:
        series = self._children.get((event.supervisor, event.child))
        if series is None:
            series = self._child(event.supervisor, event.child)
        ex = self._exemplar
        exemplar = None if ex is None else ex()  # one span: one exemplar for both counters
        with self._lock:
            series.exited(event.outcome, exemplar)
            if type(event) is ProcessFailed:
                series.failed(error_type(event.exception), exemplar)

    def _on_restarted(self, event: ProcessRestarted) -> None:
        series = self._child(event.supervisor, event.child)
        ex = self._exemplar
        exemplar = None if ex is None else ex()
        with self._lock:
            series.restarted(exemplar)

    def _on_stop_timeout(self, event: ProcessStopTimedOut) -> None:
        series = self._child(event.supervisor, event.child)
        ex = self._exemplar
        exemplar = None if ex is None else ex()
        with self._lock:
            series.stop_timed_out(exemplar)

    def _on_shutdown(self, event: ShutdownCompleted) -> None:
        series = self._supervisor(event.supervisor)
        histogram = series.shutdown
        if histogram is None:
            histogram = series.shutdown = self._shutdown.labels(event.supervisor)
        ex = self._exemplar
        histogram.observe(max(event.duration, 0.0), None if ex is None else ex())

    def _on_reload(self, event: ReloadCompleted) -> None:
        result = event.result
        reloads = self._supervisor(event.supervisor).reloads
        counter = reloads.get(result)
        if counter is None:
            counter = reloads[result] = self._reloads.labels(event.supervisor, result)
        ex = self._exemplar
        inc(counter, None if ex is None else ex())

    def _on_ready(self, event: ProcessReady) -> None:
        series = self._supervisor(event.supervisor)
        histogram = series.ready
        if histogram is None:
            histogram = series.ready = self._ready.labels(event.supervisor)
        ex = self._exemplar
        histogram.observe(max(event.duration, 0.0), None if ex is None else ex())

    def _on_restart_requested(self, event: RestartRequested) -> None:
        restarts = self._supervisor(event.supervisor).restarts
        counter = restarts.get(event.strategy)
        if counter is None:
            counter = restarts[event.strategy] = self._supervisor_restarts.labels(
                event.supervisor, event.strategy
            )
        ex = self._exemplar
        inc(counter, None if ex is None else ex())

    def __repr__(self) -> str:
        return f"<PrometheusMetrics roots={len(self.roots)} series={len(self._children)}>"
