"""The per-child series of :class:`~procman_metrics.PrometheusMetrics`.

Six metrics have one series per child: starts, exits (by outcome),
failures (by error type), restarts, stop timeouts and the last-start
timestamp. A prometheus_client labelled series is a metric object with two
locks and a value object each, about 550 bytes and a dozen objects per
child that every full collection of the cyclic GC walks. So by default
(:class:`Tally`) they are plain numbers in one object per child, counted by
the observer and read at scrape time by :class:`TallyCollector`: a 10k-child
tree keeps about 130k fewer objects for the collector, and a scrape renders
only the values (the full GC during a render in ``MetricsServer``'s thread is
what stalls the loop; see docs/benchmarks.md).

In prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set
when the observer is made) values must live in its files, so
:class:`ClientSeries` keeps prometheus_client's labelled series instead;
both classes have the same counting methods and the observer does not tell
them apart.

Guarantees (both kinds):

* Series come into existence as with prometheus_client objects: starts and
  the timestamp at the first start, exits and failures at the first of
  their label values, restarts and stop timeouts at 0 as soon as the child is
  known when ``init_series`` is on, else at their first increment.
* Counters carry the exemplar of their last increment (OpenMetrics only)
  and, unless prometheus_client's created series are disabled
  (``PROMETHEUS_DISABLE_CREATED_SERIES``), a ``_created`` sample: for a
  tally it is when the child's series were first made (the counter was 0
  from then on).
* Counting happens on the observer's thread under one lock; a scrape reads
  without taking it (each value is read whole), so a render never blocks the
  event loop's counting.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from procman.vocabulary import CHILD, ERROR_TYPE, OUTCOME, SUPERVISOR
from procman_metrics._deps import PROMETHEUS_HINT
from procman_metrics.exemplars import Exemplar
from procman_metrics.names import (
    CHILD_EXITS,
    CHILD_FAILURES,
    CHILD_LAST_START,
    CHILD_RESTARTS,
    CHILD_STARTS,
    CHILD_STOP_TIMEOUTS,
    HELP,
)

try:
    from prometheus_client import Counter, Gauge
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
    from prometheus_client.samples import Exemplar as PromExemplar
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(f"procman_metrics needs prometheus_client: {PROMETHEUS_HINT}") from exc

from procman_metrics.increment import inc, set_gauge

__all__ = ["ClientSeries", "ClientSeriesFactory", "Tally", "TallyCollector", "multiprocess_mode"]

_CHILD = (SUPERVISOR.label_key, CHILD.label_key)
_EXITS = (*_CHILD, OUTCOME.label_key)
_FAILURES = (*_CHILD, ERROR_TYPE.label_key)


def multiprocess_mode() -> bool:
    """Whether prometheus_client keeps values in a multiprocess directory (its variable is set).

    Set at all, as prometheus_client tests it: an empty value counts too.
    """
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ


class Tally:
    """The series of one child as plain numbers (None: the series does not exist yet)."""

    __slots__ = (
        "created",
        "exemplars",
        "exits",
        "failures",
        "last_start",
        "restarts",
        "starts",
        "stop_timeouts",
    )

    def __init__(self, init_series: bool) -> None:
        self.created = time.time()
        self.starts = 0
        self.last_start = 0.0
        zero = 0 if init_series else None
        self.restarts: int | None = zero
        self.stop_timeouts: int | None = zero
        self.exits: dict[str, int] | None = None
        self.failures: dict[str, int] | None = None
        self.exemplars: dict[Any, PromExemplar] | None = None
        """The last exemplar of each counter (``"starts"``, ``("exits", outcome)``...)."""

    def _exemplar(self, key: Any, exemplar: Exemplar) -> None:
        exemplars = self.exemplars
        if exemplars is None:
            exemplars = self.exemplars = {}
        exemplars[key] = PromExemplar(exemplar, 1, time.time())

    def started(self, now: float, exemplar: Exemplar | None) -> None:
        self.starts += 1
        self.last_start = now
        if exemplar:
            self._exemplar("starts", exemplar)

    def exited(self, outcome: str, exemplar: Exemplar | None) -> None:
        self.exits = _bump(self.exits, outcome)
        if exemplar:
            self._exemplar(("exits", outcome), exemplar)

    def failed(self, error_type: str, exemplar: Exemplar | None) -> None:
        self.failures = _bump(self.failures, error_type)
        if exemplar:
            self._exemplar(("failures", error_type), exemplar)

    def restarted(self, exemplar: Exemplar | None) -> None:
        self.restarts = (self.restarts or 0) + 1
        if exemplar:
            self._exemplar("restarts", exemplar)

    def stop_timed_out(self, exemplar: Exemplar | None) -> None:
        self.stop_timeouts = (self.stop_timeouts or 0) + 1
        if exemplar:
            self._exemplar("stop_timeouts", exemplar)


_NO_EXEMPLARS: dict[Any, PromExemplar] = {}


def _bump(counts: dict[str, int] | None, key: str) -> dict[str, int]:
    """``counts`` (made on first use) with ``key`` counted once more."""
    if counts is None:
        return {key: 1}
    counts[key] = counts.get(key, 0) + 1
    return counts


def _created_series_enabled() -> bool:
    """Whether prometheus_client adds ``_created`` samples (public API: a probe counter)."""
    probe = Counter("procman_probe", "probe", registry=None)
    return any(sample.name.endswith("_created") for sample in next(iter(probe.collect())).samples)


class TallyCollector(Collector):
    """Reads the tallies of every child at scrape time (registered by PrometheusMetrics)."""

    def __init__(self, tallies: dict[tuple[str, str], Any]) -> None:
        self._tallies = tallies
        """``(supervisor, child)`` -> :class:`Tally` (the observer's dict, read in place)."""

    def describe(self) -> Iterator[Metric]:
        """The six families without samples (registering never reads the tallies)."""
        yield from self._families()

    def _families(
        self,
    ) -> tuple[
        CounterMetricFamily,
        CounterMetricFamily,
        CounterMetricFamily,
        CounterMetricFamily,
        CounterMetricFamily,
        GaugeMetricFamily,
    ]:
        return (
            CounterMetricFamily(CHILD_STARTS, HELP[CHILD_STARTS], labels=_CHILD),
            CounterMetricFamily(CHILD_EXITS, HELP[CHILD_EXITS], labels=_EXITS),
            CounterMetricFamily(CHILD_FAILURES, HELP[CHILD_FAILURES], labels=_FAILURES),
            CounterMetricFamily(CHILD_RESTARTS, HELP[CHILD_RESTARTS], labels=_CHILD),
            CounterMetricFamily(CHILD_STOP_TIMEOUTS, HELP[CHILD_STOP_TIMEOUTS], labels=_CHILD),
            GaugeMetricFamily(CHILD_LAST_START, HELP[CHILD_LAST_START], labels=_CHILD),
        )

    def collect(self) -> Iterator[Metric]:
        """One family at a time: only one family's samples are alive at once.

        The samples are what a render allocates; a full collection of the
        cyclic GC that a render triggers (in ``MetricsServer``'s thread, holding
        the GIL) walks every sample still alive, so a family is yielded, encoded
        and dropped before the next is built.
        """
        starts, exits, failures, restarts, stop_timeouts, last_start = self._families()
        created = _created_series_enabled()
        # list() copies in one C call (no Python code runs, so the loop thread
        # cannot change the dict meanwhile); each value is read whole.
        tallies: list[tuple[tuple[str, str], Tally]] = list(self._tallies.items())
        yield _counted(starts, tallies, created, _starts)
        yield _counted(exits, tallies, created, _exits)
        yield _counted(failures, tallies, created, _failures)
        yield _counted(restarts, tallies, created, _restarts)
        yield _counted(stop_timeouts, tallies, created, _stop_timeouts)
        for labels, tally in tallies:
            if tally.starts:
                last_start.add_metric(labels, tally.last_start)
        yield last_start


Rows = Iterable[tuple[tuple[str, ...], int, Any]]
"""A counter's samples of one tally: (extra label values, count, exemplar key)."""


def _counted(
    family: CounterMetricFamily,
    tallies: list[tuple[tuple[str, str], Tally]],
    created: bool,
    rows_of: Callable[[Tally], Rows],
) -> CounterMetricFamily:
    """``family`` with the samples ``rows_of`` reads from every tally."""
    for labels, tally in tallies:
        rows = rows_of(tally)
        if rows:
            ex = tally.exemplars or _NO_EXEMPLARS
            made = tally.created if created else None
            for extra, count, key in rows:
                family.add_metric((*labels, *extra), count, made, exemplar=ex.get(key))
    return family


def _starts(tally: Tally) -> Rows:
    n = tally.starts  # the series exists from the first start on
    return (((), n, "starts"),) if n else ()


def _exits(tally: Tally) -> Rows:
    outcomes = tally.exits
    return [] if outcomes is None else [((o,), n, ("exits", o)) for o, n in list(outcomes.items())]


def _failures(tally: Tally) -> Rows:
    types = tally.failures
    return [] if types is None else [((t,), n, ("failures", t)) for t, n in list(types.items())]


def _restarts(tally: Tally) -> Rows:
    n = tally.restarts
    return () if n is None else (((), n, "restarts"),)


def _stop_timeouts(tally: Tally) -> Rows:
    n = tally.stop_timeouts
    return () if n is None else (((), n, "stop_timeouts"),)


class ClientSeriesFactory:
    """The six prometheus_client metrics behind :class:`ClientSeries` (multiprocess mode)."""

    def __init__(self) -> None:
        self.starts = Counter(CHILD_STARTS, HELP[CHILD_STARTS], _CHILD, registry=None)
        self.exits = Counter(CHILD_EXITS, HELP[CHILD_EXITS], _EXITS, registry=None)
        self.failures = Counter(CHILD_FAILURES, HELP[CHILD_FAILURES], _FAILURES, registry=None)
        self.restarts = Counter(CHILD_RESTARTS, HELP[CHILD_RESTARTS], _CHILD, registry=None)
        self.stop_timeouts = Counter(
            CHILD_STOP_TIMEOUTS, HELP[CHILD_STOP_TIMEOUTS], _CHILD, registry=None
        )
        self.last_start = Gauge(
            CHILD_LAST_START, HELP[CHILD_LAST_START], _CHILD, registry=None, multiprocess_mode="max"
        )

    def collectors(self) -> tuple[Any, ...]:
        """In registration (and exposition) order."""
        return (
            self.starts,
            self.exits,
            self.failures,
            self.restarts,
            self.stop_timeouts,
            self.last_start,
        )

    def __call__(self, supervisor: str, child: str, init_series: bool) -> ClientSeries:
        return ClientSeries(self, supervisor, child, init_series)


class ClientSeries:
    """The series of one child as prometheus_client labelled series, made on first use."""

    __slots__ = (
        "_exits",
        "_failures",
        "_labels",
        "_last_start",
        "_metrics",
        "_restarts",
        "_starts",
        "_stop_timeouts",
    )

    def __init__(
        self, metrics: ClientSeriesFactory, supervisor: str, child: str, init_series: bool
    ) -> None:
        self._metrics = metrics
        self._labels = (supervisor, child)
        self._starts: Any = None
        self._last_start: Any = None
        self._restarts: Any = metrics.restarts.labels(*self._labels) if init_series else None
        self._stop_timeouts: Any = (
            metrics.stop_timeouts.labels(*self._labels) if init_series else None
        )
        self._exits: dict[str, Any] = {}
        self._failures: dict[str, Any] = {}

    def started(self, now: float, exemplar: Exemplar | None) -> None:
        if self._starts is None:
            self._starts = self._metrics.starts.labels(*self._labels)
            self._last_start = self._metrics.last_start.labels(*self._labels)
        inc(self._starts, exemplar)
        set_gauge(self._last_start, now)

    def exited(self, outcome: str, exemplar: Exemplar | None) -> None:
        counter = self._exits.get(outcome)
        if counter is None:
            counter = self._exits[outcome] = self._metrics.exits.labels(*self._labels, outcome)
        inc(counter, exemplar)

    def failed(self, error_type: str, exemplar: Exemplar | None) -> None:
        counter = self._failures.get(error_type)
        if counter is None:
            counter = self._failures[error_type] = self._metrics.failures.labels(
                *self._labels, error_type
            )
        inc(counter, exemplar)

    def restarted(self, exemplar: Exemplar | None) -> None:
        if self._restarts is None:
            self._restarts = self._metrics.restarts.labels(*self._labels)
        inc(self._restarts, exemplar)

    def stop_timed_out(self, exemplar: Exemplar | None) -> None:
        if self._stop_timeouts is None:
            self._stop_timeouts = self._metrics.stop_timeouts.labels(*self._labels)
        inc(self._stop_timeouts, exemplar)
