"""Scrape-time collection: the children gauge, and rendering a registry with failures contained.

:class:`ChildrenCollector` reports ``procman_children{supervisor,state}`` read
from the tree at scrape time. No gauge is updated per event: each scrape takes
one snapshot per tracked root (see :mod:`procman_metrics.tracking`) and
reports, for every supervisor of every tree, the number of direct children in
each :class:`~procman.ChildState` -- all seven states, zeros included, so
series never disappear while a supervisor exists. A supervisor path seen in
two tracked trees is reported once (the first tree wins). A tree whose
snapshot fails is left out of that scrape (logged at most once a minute).

:class:`Exposition` renders a registry for :class:`~procman_metrics.MetricsServer`
through prometheus_client's public API only, so that one bad collector cannot
take the whole page down:

* A label value (or help text) that cannot be encoded as UTF-8 -- a lone
  surrogate, which is what :func:`os.fsdecode` gives for an undecodable file
  name -- is served backslash-escaped (``caf\\udcff``) instead of failing the
  encoder for the whole registry.
* A collector that raises is left out: the families collected before it are
  served, and so are the families after it that earlier scrapes (or
  procman's own metric names) made known, each fetched through
  :meth:`CollectorRegistry.restricted_registry`. A collector that has never
  succeeded hides the collectors registered after it that were never seen
  either: a registry cannot be enumerated through public API.
* Failures are logged at most once a minute per kind, never once per scrape.

The fast path (nothing failed) costs one collection and one encoding, as
before; the containment work only runs when a render fails.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from procman import ChildState
from procman_metrics._deps import PROMETHEUS_HINT
from procman_metrics.names import CHILDREN, HELP
from procman_metrics.tracking import TrackedRoots, snapshot_of

try:
    from prometheus_client.metrics_core import GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector, CollectorRegistry
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(f"procman_metrics needs prometheus_client: {PROMETHEUS_HINT}") from exc

__all__ = ["ChildrenCollector", "Exposition", "LogLimiter", "safe_label"]

_log = logging.getLogger("procman.metrics")

Encoder = Callable[[Collector], bytes]


class LogLimiter:
    """Logs each kind of message at most once per ``interval`` seconds (thread-safe).

    ``key`` names the kind and must come from a small fixed set (never from
    client input); the next message of a kind says how many were suppressed.
    """

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self._logger = logger
        self._interval = interval
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, int]] = {}

    def log(self, level: int, key: str, msg: str, *args: object, exc_info: bool = False) -> bool:
        """Log unless ``key`` was logged within the interval; True if it was logged."""
        if not self._logger.isEnabledFor(level):
            return False
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._seen.get(key, (None, 0))
            if last is not None and now - last < self._interval:
                self._seen[key] = (last, suppressed + 1)
                return False
            if len(self._seen) >= 256:
                self._seen.clear()
            self._seen[key] = (now, 0)
        if suppressed:
            msg += f" ({suppressed} more like this in the last {self._interval:.0f}s)"
        self._logger.log(level, msg, *args, exc_info=exc_info)
        return True


_limited = LogLimiter(_log)


def safe_label(value: str) -> str:
    """``value`` if it encodes as UTF-8, else with the offending code points backslash-escaped."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


class ChildrenCollector(Collector):
    """A prometheus_client collector reporting children by state for tracked roots."""

    def __init__(self, roots: TrackedRoots) -> None:
        self._roots = roots

    def describe(self) -> Iterator[Metric]:
        """The metric family without samples (so registering never takes a snapshot)."""
        yield GaugeMetricFamily(CHILDREN, HELP[CHILDREN], labels=("supervisor", "state"))

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(CHILDREN, HELP[CHILDREN], labels=("supervisor", "state"))
        seen: set[str] = set()
        states = ChildState
        for manager in self._roots.managers():
            try:
                root = snapshot_of(manager)
            except Exception:
                _limited.log(
                    logging.ERROR,
                    "children-snapshot",
                    "procman metrics: the snapshot of %r failed; its tree is left out of "
                    "this scrape",
                    manager,
                    exc_info=True,
                )
                continue
            if root is None:
                continue
            for sup in root.walk():
                path = safe_label(sup.path)
                if path in seen:
                    continue
                seen.add(path)
                counts = dict.fromkeys(states, 0)
                for child in sup.children:
                    counts[child.state] += 1
                for state, count in counts.items():
                    family.add_metric((path, state.value), count)
        yield family


# -- rendering with failures contained ------------------------------------------------------
class _Listed(Collector):
    """A collector serving metrics already collected."""

    __slots__ = ("_metrics",)

    def __init__(self, metrics: Sequence[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics


# Sample-name suffixes by family type, as prometheus_client registers them.
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "info": ("_info",),
}
_ALL_SUFFIXES = tuple(sorted({s for group in _SUFFIXES.values() for s in group}))


def _family_name(sample_name: str) -> str:
    return sample_name.removesuffix("_total")


def _sample_names(family: str, kind: str | None) -> set[str]:
    suffixes = _SUFFIXES.get(kind, ()) if kind is not None else _ALL_SUFFIXES
    return {family, *(family + suffix for suffix in suffixes)}


# procman's own families are always known, so a user collector that fails from
# the first scrape on cannot hide them.
_PROCMAN_FAMILIES: dict[str, str | None] = {_family_name(name): None for name in HELP}


def _escaped(metric: Metric) -> Metric:
    """A copy of ``metric`` whose strings all encode as UTF-8."""
    fixed = copy.copy(metric)
    fixed.documentation = safe_label(metric.documentation)
    samples = []
    for sample in metric.samples:
        labels = {safe_label(k): safe_label(v) for k, v in sample.labels.items()}
        exemplar = sample.exemplar
        if exemplar is not None:
            exemplar = exemplar._replace(
                labels={safe_label(k): safe_label(v) for k, v in exemplar.labels.items()}
            )
        samples.append(sample._replace(labels=labels, exemplar=exemplar))
    fixed.samples = samples
    return fixed


class Exposition:
    """Renders a registry with failures contained (see the module docstring)."""

    def __init__(self, log: LogLimiter | None = None) -> None:
        self._known: dict[str, str | None] = dict(_PROCMAN_FAMILIES)
        self._log = log if log is not None else LogLimiter(_log)

    def render(
        self,
        registry: CollectorRegistry,
        encoder: Encoder,
        names: Sequence[str] | None = None,
    ) -> bytes:
        """The page of ``registry`` (only the samples in ``names`` when given)."""
        source = registry if names is None else registry.restricted_registry(names)
        metrics: list[Metric] = []
        try:
            for metric in source.collect():
                metrics.append(metric)
        except Exception:
            self._log.log(
                logging.ERROR,
                "collector",
                "procman metrics server: a collector raised during a scrape; the families "
                "it did not report are left out of the page",
                exc_info=True,
            )
            self._recover(registry, metrics, names)
        else:
            if names is None:
                known = dict(_PROCMAN_FAMILIES)
                known.update((m.name, m.type) for m in metrics)
                self._known = known
            try:
                return encoder(_Listed(metrics))
            except Exception:  # the per-family pass below finds and logs it
                pass
        return encoder(_Listed(self._encodable(metrics, encoder)))

    def _recover(
        self, registry: CollectorRegistry, metrics: list[Metric], names: Sequence[str] | None
    ) -> None:
        """Add the known families not collected yet, one restricted collection each."""
        seen = {m.name for m in metrics}
        wanted = set(names) if names is not None else None
        for family, kind in list(self._known.items()):
            if family in seen:
                continue
            samples = _sample_names(family, kind)
            if wanted is not None:
                samples &= wanted
                if not samples:
                    continue
            try:
                found = list(registry.restricted_registry(samples).collect())
            except Exception:  # the failing collector's own family, logged above
                continue
            for metric in found:
                if metric.name not in seen:
                    seen.add(metric.name)
                    metrics.append(metric)

    def _encodable(self, metrics: list[Metric], encoder: Encoder) -> list[Metric]:
        """The families that encode, escaping strings that are not UTF-8; the rest dropped."""
        good: list[Metric] = []
        for metric in metrics:
            for candidate in (metric, _escaped(metric)):
                try:
                    encoder(_Listed([candidate]))
                except Exception:
                    continue
                if candidate is not metric:
                    self._log.log(
                        logging.WARNING,
                        "unencodable",
                        "procman metrics server: %s has a label value or help text that "
                        "is not valid UTF-8; it is served backslash-escaped",
                        safe_label(metric.name),
                    )
                good.append(candidate)
                break
            else:
                self._log.log(
                    logging.ERROR,
                    "unrenderable",
                    "procman metrics server: %s cannot be rendered; it is left out of the page",
                    safe_label(metric.name),
                )
        return good
