"""configure_sdk: providers from OTEL_* variables, protocol check, cleanups."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from procman.observe import OtelTracingObserver
from procman.observe.otel_setup import check_environment, configure_sdk


def test_console_mode_returns_the_observer_and_cleanups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "svc-under-test")
    cleanups: list = []
    [observer] = configure_sdk("console", cleanups, set_global=False)
    assert isinstance(observer, OtelTracingObserver)
    assert len(cleanups) == 1
    owner = getattr(cleanups[0], "__self__", None)
    assert isinstance(owner, TracerProvider)
    assert owner.resource.attributes["service.name"] == "svc-under-test"
    for cleanup in cleanups:
        cleanup()


def test_default_service_name_is_procman(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    cleanups: list = []
    configure_sdk("console", cleanups, set_global=False)
    owner = cleanups[0].__self__
    assert owner.resource.attributes["service.name"] == "procman"
    cleanups[0]()


def test_otlp_mode_adds_a_log_handler_and_removes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    target = logging.getLogger("procman_setup_test")
    cleanups: list = []
    configure_sdk("otlp", cleanups, set_global=False, logger=target.name)
    assert len(cleanups) == 2
    assert any(type(h).__name__ == "LoggingHandler" for h in target.handlers)
    for cleanup in reversed(cleanups):
        cleanup()
    assert not target.handlers


@pytest.mark.parametrize(
    "var", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]
)
def test_only_http_protobuf(monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    monkeypatch.setenv(var, "grpc")
    cleanups: list = []
    with pytest.raises(ValueError, match="http/protobuf"):
        configure_sdk("otlp", cleanups, set_global=False)
    assert cleanups == []


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="console"):
        configure_sdk("jaeger", [], set_global=False)  # type: ignore[arg-type]


@pytest.mark.parametrize("var", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"])
def test_check_environment_before_anything_runs(monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    check_environment("console")  # console reads no exporter variable
    check_environment("otlp")
    monkeypatch.setenv(var, "grpc")
    check_environment("console")
    with pytest.raises(ValueError, match="http/protobuf"):
        check_environment("otlp")
    with pytest.raises(ValueError, match="console"):
        check_environment("jaeger")
