from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

IN_CI = bool(os.environ.get("CI"))


def require(condition: bool, reason: str) -> None:
    """Skip locally, fail in CI: for tests that need a real component."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def root_dir() -> Path:
    return ROOT


# Eager tasks (Python 3.12+): `pytest --eager-tasks` installs
# asyncio.eager_task_factory on every event loop pytest-asyncio creates for a
# test or an async fixture (through its pytest_asyncio_loop_factories hook) and
# on the loop of every asyncio.run() a test calls itself, so create_task() runs
# a new task up to its first suspension at once. noxfile.py runs a
# representative part of the suite this way on 3.12 and 3.13. Loops made any
# other way (asyncio.new_event_loop(), a subprocess) keep the default factory.
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--eager-tasks",
        action="store_true",
        default=False,
        help="run every asyncio test on a loop with asyncio.eager_task_factory (Python 3.12+)",
    )


def eager_tasks_enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("--eager-tasks"))


def new_eager_event_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
    return loop


class _EagerTaskLoops:
    """Registered only under --eager-tasks: pytest-asyncio then builds every loop with it."""

    @staticmethod
    def pytest_asyncio_loop_factories(
        config: pytest.Config, item: pytest.Item
    ) -> dict[str, object]:
        return {"eager": new_eager_event_loop}

    @pytest.fixture(autouse=True)
    @staticmethod
    def _eager_asyncio_run(monkeypatch: pytest.MonkeyPatch) -> None:
        """asyncio.run() in a test (e.g. the property suite) gets an eager loop too."""
        real_run = asyncio.run

        def run(main: Any, *, debug: bool | None = None, loop_factory: Any = None) -> Any:
            return real_run(main, debug=debug, loop_factory=loop_factory or new_eager_event_loop)

        monkeypatch.setattr(asyncio, "run", run)


def pytest_configure(config: pytest.Config) -> None:
    if not eager_tasks_enabled(config):
        return
    if sys.version_info < (3, 12):
        raise pytest.UsageError(
            "--eager-tasks needs Python 3.12 or newer (asyncio.eager_task_factory)"
        )
    config.pluginmanager.register(_EagerTaskLoops(), "procman-eager-tasks")


# Known, accepted differences under --eager-tasks (strict: an XPASS fails, so a stale
# entry gets removed). The ones that could hang get a short pytest-timeout.
EAGER_XFAIL: dict[str, str] = {
    "tests/test_regressions.py::test_snapshot_without_observers_tells_starting_from_running": (
        "eager tasks: add() runs the new child to its first await before returning, so it "
        "is RUNNING at once; the test's premise (STARTING until the loop runs it) does not hold"
    ),
}
EAGER_HANGS: set[str] = set()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not eager_tasks_enabled(config):
        return
    for item in items:
        reason = EAGER_XFAIL.get(item.nodeid)
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
        if item.nodeid in EAGER_HANGS:
            item.add_marker(pytest.mark.timeout(10))


def pytest_report_header(config: pytest.Config) -> str | None:
    if eager_tasks_enabled(config):
        return "eager tasks: asyncio.eager_task_factory on every test event loop"
    return None


# Hypothesis profiles: "default" (bounded, in the test command) and "long"
# (pytest --hypothesis-profile=long tests/property, a few thousand examples).
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "default",
    max_examples=int(os.environ.get("PROCMAN_PROPERTY_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "long",
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile("default")
