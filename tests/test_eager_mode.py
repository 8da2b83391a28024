"""`pytest --eager-tasks` (Python 3.12+) really runs the tests under asyncio.eager_task_factory.

Without the option the test loops keep asyncio's default task factory; one
test here runs this file again with the option in a subprocess, so an
ordinary run checks the eager mode too.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import eager_tasks_enabled
from helpers import Worker

from procman import ProcessManager

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def eager(request: pytest.FixtureRequest) -> bool:
    return eager_tasks_enabled(request.config)


@pytest.fixture
async def fixture_loop_factory() -> AsyncIterator[object]:
    yield asyncio.get_running_loop().get_task_factory()


async def test_the_test_loop_has_the_expected_task_factory(eager: bool) -> None:
    factory = asyncio.get_running_loop().get_task_factory()
    if eager:
        assert factory is asyncio.eager_task_factory  # type: ignore[attr-defined,unused-ignore]
    else:
        assert factory is None


async def test_async_fixtures_share_the_test_loop_and_its_factory(
    eager: bool, fixture_loop_factory: object
) -> None:
    assert fixture_loop_factory is asyncio.get_running_loop().get_task_factory()
    assert (fixture_loop_factory is not None) is eager


def test_asyncio_run_in_a_test_gets_the_same_factory(eager: bool) -> None:
    async def factory() -> object:
        return asyncio.get_running_loop().get_task_factory()

    got = asyncio.run(factory())
    if eager:
        assert got is asyncio.eager_task_factory  # type: ignore[attr-defined,unused-ignore]
    else:
        assert got is None


async def test_create_task_runs_the_new_task_at_once_only_under_eager_tasks(eager: bool) -> None:
    steps: list[str] = []

    async def child() -> None:
        steps.append("child started")
        await asyncio.sleep(0)
        steps.append("child resumed")

    task = asyncio.create_task(child())
    steps.append("create_task returned")
    await task
    if eager:
        assert steps == ["child started", "create_task returned", "child resumed"]
    else:
        assert steps == ["create_task returned", "child started", "child resumed"]


async def test_a_tree_runs_and_stops_gracefully_in_either_mode(eager: bool) -> None:
    a, b = Worker("a"), Worker("b")
    m = ProcessManager("root", observers=[])
    m.insert(a)
    m.insert(b)
    task = asyncio.create_task(m.process_start())
    await asyncio.wait_for(asyncio.gather(a.started.wait(), b.started.wait()), 5)
    await m.process_handle().shutdown()
    await asyncio.wait_for(task, 5)
    assert a.stopped_gracefully and b.stopped_gracefully


def test_the_option_runs_this_file_eagerly_or_is_refused_before_3_12(eager: bool) -> None:
    if eager:
        pytest.skip("this test starts the eager run itself")
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    pytest_cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"]
    proc = subprocess.run(
        [*pytest_cmd, "--eager-tasks", str(Path(__file__).relative_to(ROOT))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = proc.stdout + proc.stderr
    if sys.version_info < (3, 12):
        assert proc.returncode == pytest.ExitCode.USAGE_ERROR, output
        assert "--eager-tasks needs Python 3.12 or newer" in output
        return
    assert proc.returncode == 0, output
    assert "5 passed, 1 skipped" in output, output
    assert "this test starts the eager run itself" in output, output
