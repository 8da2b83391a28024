"""ChildrenCollector: ``procman_children{supervisor,state}`` read from the tree at scrape time.

No gauge is updated per event: each scrape takes one snapshot per tracked
root (see :mod:`procman_metrics.tracking`) and reports, for every supervisor
of every tree, the number of direct children in each
:class:`~procman.ChildState` -- all seven states, zeros included, so series
never disappear while a supervisor exists. A supervisor path seen in two
tracked trees is reported once (the first tree wins).
"""

from __future__ import annotations

from collections.abc import Iterator

from procman import ChildState
from procman_metrics._deps import PROMETHEUS_HINT
from procman_metrics.names import CHILDREN, HELP
from procman_metrics.tracking import TrackedRoots

try:
    from prometheus_client.metrics_core import GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(f"procman_metrics needs prometheus_client: {PROMETHEUS_HINT}") from exc

__all__ = ["ChildrenCollector"]


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
        for root in self._roots.snapshots():
            for sup in root.walk():
                path = sup.path
                if path in seen:
                    continue
                seen.add(path)
                counts = dict.fromkeys(states, 0)
                for child in sup.children:
                    counts[child.state] += 1
                for state, count in counts.items():
                    family.add_metric((path, state.value), count)
        yield family
