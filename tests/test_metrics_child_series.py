"""The per-child series of PrometheusMetrics: tallies read at scrape time, and the
prometheus_client series kept in multiprocess mode, give the same page."""

from __future__ import annotations

import gc
import threading
from typing import Any

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from procman import LifecycleEvent
from procman.events import (
    ProcessAbandoned,
    ProcessCancelled,
    ProcessFailed,
    ProcessRestarted,
    ProcessStarted,
    ProcessStarting,
    ProcessStopped,
    ProcessStopTimedOut,
)
from procman_metrics import PrometheusMetrics
from procman_metrics.child_series import ClientSeries, Tally

Page = dict[tuple[str, frozenset[tuple[str, str]]], float]

PER_CHILD = (
    "procman_child_starts",
    "procman_child_exits",
    "procman_child_failures",
    "procman_child_restarts",
    "procman_child_stop_timeouts",
    "procman_child_last_start_timestamp_seconds",
)


def page(registry: CollectorRegistry) -> Page:
    out: Page = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def comparable(p: Page) -> Page:
    """The per-child samples, with the wall-clock ones (timestamps, _created) set to 0."""
    return {
        (name, labels): 0.0 if name.endswith(("_created", "_seconds")) else v
        for (name, labels), v in p.items()
        if name.startswith(PER_CHILD)
    }


def lifecycle() -> list[LifecycleEvent]:
    """Two supervisors, four children: every per-child event, some twice."""
    a = {"supervisor": "root", "child": "a"}
    b = {"supervisor": "root", "child": "b"}
    c = {"supervisor": "root/inner", "child": "c"}
    d = {"supervisor": "root/inner", "child": "d"}
    return [
        ProcessStarting(**a, time=0.0),
        ProcessStarted(**a, time=0.0),
        ProcessFailed(**a, time=1.0, exception=ValueError("x")),
        ProcessRestarted(**a, time=1.0, attempt=1),
        ProcessStarted(**a, time=1.0, restart_count=1),
        ProcessFailed(**a, time=2.0, exception=KeyError("y")),
        ProcessRestarted(**a, time=2.0, attempt=2),
        ProcessStarted(**a, time=2.0, restart_count=2),
        ProcessStopped(**a, time=3.0),
        ProcessStarted(**b, time=0.0),
        ProcessStopTimedOut(**b, time=1.0, grace_period=0.5),
        ProcessCancelled(**b, time=1.5, forced=True),
        ProcessStarted(**c, time=0.0),
        ProcessAbandoned(**c, time=1.0),
        ProcessStarting(**d, time=0.0),  # never ran
        ProcessCancelled(**d, time=0.5),
    ]


def metrics_of_kind(kind: str, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> PrometheusMetrics:
    if kind == "client":  # what PROMETHEUS_MULTIPROC_DIR selects (read when the observer is made)
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/nonexistent-unused")
    else:
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
        monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    metrics = PrometheusMetrics(CollectorRegistry(), **kwargs)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    return metrics


@pytest.mark.parametrize("init_series", [True, False])
def test_tallies_and_prometheus_client_series_give_the_same_page(
    monkeypatch: pytest.MonkeyPatch, init_series: bool
) -> None:
    pages = {}
    for kind in ("tally", "client"):
        metrics = metrics_of_kind(kind, monkeypatch, init_series=init_series)
        for event in lifecycle():
            metrics.on_event(event)
        expected = ClientSeries if kind == "client" else Tally
        assert all(type(s) is expected for s in metrics._children.values())
        pages[kind] = page(metrics.registry)
        metrics.close()
    assert comparable(pages["tally"]) == comparable(pages["client"])
    got = pages["tally"]
    a = frozenset({("supervisor", "root"), ("child", "a")})
    assert got[("procman_child_starts_total", a)] == 3
    assert got[("procman_child_restarts_total", a)] == 2
    assert got[("procman_child_exits_total", a | {("outcome", "error")})] == 2
    assert got[("procman_child_failures_total", a | {("error_type", "KeyError")})] == 1
    d = frozenset({("supervisor", "root/inner"), ("child", "d")})
    assert ("procman_child_starts_total", d) not in got  # never started: no start series
    assert (("procman_child_restarts_total", d) in got) is init_series
    # every counter series has its _created sample (prometheus_client's default)
    counters = {k for k in got if k[0].endswith("_total") and k[0].startswith(PER_CHILD)}
    created = {
        (n.replace("_created", "_total"), labels) for n, labels in got if n.endswith("_created")
    }
    assert counters <= created


def test_created_samples_follow_prometheus_clients_setting() -> None:
    metrics = PrometheusMetrics(CollectorRegistry())
    for event in lifecycle():
        metrics.on_event(event)
    try:
        prometheus_client.disable_created_metrics()
        names = {name for name, _ in page(metrics.registry)}
        assert not any(n.endswith("_created") and n.startswith(PER_CHILD) for n in names)
        assert "procman_child_starts_total" in names
    finally:
        prometheus_client.enable_created_metrics()
    assert "procman_child_starts_created" in {name for name, _ in page(metrics.registry)}


def test_counting_from_two_threads_while_a_third_scrapes_loses_nothing() -> None:
    metrics = PrometheusMetrics(CollectorRegistry())
    n = 5_000
    errors: list[BaseException] = []
    stop = threading.Event()

    def count(supervisor: str) -> None:
        try:
            for i in range(n):
                metrics.on_event(ProcessStarted(supervisor=supervisor, child="shared", time=0.0))
                # a new series per event: the scraper sees the dict grow under it
                metrics.on_event(ProcessStopped(supervisor=supervisor, child=f"c{i}", time=0.0))
                metrics.on_event(ProcessStarted(supervisor="both", child="shared", time=0.0))
        except BaseException as exc:  # pragma: no cover - the failure reported below
            errors.append(exc)

    def scrape() -> None:
        try:
            while not stop.is_set():
                page(metrics.registry)
        except BaseException as exc:  # pragma: no cover - the failure reported below
            errors.append(exc)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    threads = [threading.Thread(target=count, args=(s,)) for s in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    scraper.join()
    assert errors == []
    got = page(metrics.registry)
    shared = frozenset({("supervisor", "both"), ("child", "shared")})
    assert got[("procman_child_starts_total", shared)] == 2 * n
    exits = [k for k in got if k[0] == "procman_child_exits_total"]
    assert len(exits) == 2 * n


def test_a_big_tree_keeps_no_prometheus_client_object_per_child() -> None:
    def client_objects() -> int:
        modules = (str(type(o).__module__) for o in gc.get_objects())
        return sum(1 for module in modules if module.startswith("prometheus_client"))

    metrics = PrometheusMetrics(CollectorRegistry())
    metrics.on_event(ProcessStarted(supervisor="root", child="warm-up", time=0.0))
    before = client_objects()
    for i in range(1_000):
        metrics.on_event(ProcessStarted(supervisor="root", child=f"c{i}", time=0.0))
        metrics.on_event(ProcessStopped(supervisor="root", child=f"c{i}", time=0.0))
    assert client_objects() - before < 10  # supervisor-level series only, not 1,000 x 5
    assert len(page(metrics.registry)) > 5_000
