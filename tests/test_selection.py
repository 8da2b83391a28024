"""observers_from_names / observers_from_env: names, order, errors, missing extras."""

from __future__ import annotations

import asyncio
import sys

import pytest

import procman.observe
import procman_metrics
from procman import ProcessManager
from procman.builtin import IdleProcess
from procman.observe import (
    LoggingObserver,
    LoguruObserver,
    OtelTracingObserver,
    observers_from_env,
    observers_from_names,
)


def test_names_build_observers_tracing_first() -> None:
    observers = observers_from_names("logging, loguru,OTEL")
    assert [type(o) for o in observers] == [OtelTracingObserver, LoggingObserver, LoguruObserver]
    observer = observers[0]
    assert isinstance(observer, OtelTracingObserver) and observer.child_spans == "run"


def test_iterables_and_duplicates() -> None:
    observers = observers_from_names(["logging", "logging", " otel "])
    assert [type(o) for o in observers] == [OtelTracingObserver, LoggingObserver]


def test_prometheus_maps_to_procman_metrics() -> None:
    [metrics] = observers_from_names("prometheus")
    try:
        assert isinstance(metrics, procman_metrics.PrometheusMetrics)
    finally:
        metrics.close()  # type: ignore[attr-defined]  # frees the global registry


def test_none_means_no_observer_at_all() -> None:
    assert observers_from_names("none") == []
    assert observers_from_names("") == []
    root = ProcessManager("root", observers=observers_from_names("none"))
    root.insert(IdleProcess())

    async def run() -> None:
        task = asyncio.ensure_future(root.process_start())
        await root.wait_started()
        assert not root.fanout  # not even the default logging observer
        await root.process_handle().shutdown()
        await task

    asyncio.run(run())


def test_none_cannot_be_combined() -> None:
    with pytest.raises(ValueError, match="'none' cannot be combined"):
        observers_from_names("none,logging")


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError) as info:
        observers_from_names("logging,jaeger")
    message = str(info.value)
    assert "'jaeger'" in message
    for name in ("logging", "loguru", "otel", "prometheus", "none"):
        assert name in message


def test_non_string_names_are_rejected() -> None:
    with pytest.raises(TypeError):
        observers_from_names(["logging", 3])  # type: ignore[list-item]


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROCMAN_OBSERVERS", raising=False)
    assert [type(o) for o in observers_from_env()] == [LoggingObserver]
    monkeypatch.setenv("PROCMAN_OBSERVERS", "loguru otel")
    assert [type(o) for o in observers_from_env()] == [OtelTracingObserver, LoguruObserver]
    monkeypatch.setenv("PROCMAN_OBSERVERS", "none")
    assert observers_from_env() == []
    monkeypatch.setenv("MY_OBSERVERS", "statsd")
    with pytest.raises(ValueError, match=r"\$MY_OBSERVERS='statsd'"):
        observers_from_env("MY_OBSERVERS")
    monkeypatch.delenv("MY_OBSERVERS")
    assert observers_from_env("MY_OBSERVERS", default="none") == []


@pytest.mark.parametrize(
    ("name", "library", "modules", "extra"),
    [
        ("loguru", "loguru", ["procman.observe.loguru"], "loguru"),
        ("otel", "opentelemetry", ["procman.observe.otel"], "otel"),
        (
            "prometheus",
            "prometheus_client",
            ["procman_metrics.prometheus"],
            "prometheus",
        ),
    ],
)
def test_missing_extra_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, name: str, library: str, modules: list[str], extra: str
) -> None:
    monkeypatch.setitem(sys.modules, library, None)  # makes "import library" fail
    for module in modules:
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.delattr(procman_metrics, "PrometheusMetrics", raising=False)
    with pytest.raises(ImportError, match=rf"pip install 'procman\[{extra}\]'"):
        observers_from_names(["logging", name])


def test_lazy_exports_of_the_observe_package() -> None:
    assert procman.observe.OtelTracingObserver is OtelTracingObserver
    assert "LoguruObserver" in dir(procman.observe)
    with pytest.raises(AttributeError):
        _ = procman.observe.NoSuchObserver  # type: ignore[attr-defined]


def test_importing_observe_needs_no_third_party_library() -> None:
    import subprocess

    code = (
        "import sys, procman, procman.observe\n"
        "from procman.observe import LoggingObserver\n"
        "bad = [m for m in ('opentelemetry', 'loguru', 'prometheus_client') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
