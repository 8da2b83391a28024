"""ProcessManagerBuilder: fluent setters with clear errors at the call."""

from __future__ import annotations

from datetime import timedelta

import pytest

from procman import ProcessManager, ProcessManagerBuilder
from procman.builtin import IdleProcess


def test_setters_return_builder_and_build_configures_manager() -> None:
    idle = IdleProcess()
    b = ProcessManagerBuilder()
    assert b.name("svc") is b
    assert b.pre_insert(idle) is b
    assert b.auto_cleanup(False) is b
    assert b.shutdown_grace_period(2.5) is b
    m = b.build()
    assert isinstance(m, ProcessManager)
    assert m.name == "svc" and m.process_name() == "svc"
    assert m.shutdown_grace_period == 2.5


def test_defaults() -> None:
    m = ProcessManagerBuilder().build()
    assert m.shutdown_grace_period == 30.0


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        (-1, ValueError, "shutdown_grace_period must be >= 0"),
        ("5", TypeError, "shutdown_grace_period must be a number"),
        (None, TypeError, "shutdown_grace_period"),
        (True, TypeError, "shutdown_grace_period"),
        (float("inf"), ValueError, "finite"),
        (float("nan"), ValueError, "finite"),
        (timedelta(seconds=-1), ValueError, "shutdown_grace_period"),
    ],
)
def test_bad_grace_period(value: object, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        ProcessManagerBuilder().shutdown_grace_period(value)  # type: ignore[arg-type]
    with pytest.raises(error, match=text):
        ProcessManager(shutdown_grace_period=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "error"), [("", ValueError), (3, TypeError)])
def test_bad_name(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="name"):
        ProcessManagerBuilder().name(value)  # type: ignore[arg-type]


def test_bad_auto_cleanup() -> None:
    with pytest.raises(TypeError, match="auto_cleanup"):
        ProcessManagerBuilder().auto_cleanup("yes")  # type: ignore[arg-type]


def test_bad_observer() -> None:
    with pytest.raises(TypeError, match="on_event"):
        ProcessManagerBuilder().observer(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_event"):
        ProcessManager(observers=[42])  # type: ignore[list-item]
