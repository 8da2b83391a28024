"""The exit report: final state, restarts, run time and last error of every child."""

from __future__ import annotations

import logging
import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_cli_run import _command

from procman import ProcessManager, RuntimeContext, runnable
from procman.builtin import RestartBackoff, RestartSupervisor
from procman.observe import LoggingObserver
from procman.report import ExitRecorder, ExitReport, exit_report


def flaky(failures: int) -> RestartSupervisor:
    runs = 0

    async def run(ctx: RuntimeContext) -> None:
        nonlocal runs
        runs += 1
        if runs <= failures:
            raise RuntimeError(f"attempt {runs} failed")

    return RestartSupervisor(runnable(run, name="flaky"), RestartBackoff(initial=0.001, max=0.001))


async def ok(ctx: RuntimeContext) -> None:
    return None


async def bad(ctx: RuntimeContext) -> None:
    raise ValueError("bad config")


async def test_the_report_of_a_tree_with_restarts_and_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = ExitRecorder()
    nested = ProcessManager("db").insert(runnable(bad, name="conn"))
    root = ProcessManager("app", observers=[recorder]).insert(flaky(2)).insert(nested)
    root.insert(runnable(ok, name="job"))
    with pytest.raises(ValueError):
        await root.process_start()
    with caplog.at_level(logging.INFO, logger="procman"):
        report = exit_report(recorder)
    by_path = {c.path: c for c in report.children}
    assert set(by_path) >= {"app/db", "app/db/conn", "app/job"}
    assert by_path["app/db/conn"].state == "failed"
    assert by_path["app/db/conn"].last_error == "ValueError: bad config"
    assert by_path["app/db"].state == "failed"
    assert by_path["app/job"].state == "stopped"
    assert by_path["app/job"].last_error is None
    # the tree order: a nested manager's children right after it
    paths = [c.path for c in report.children]
    assert paths.index("app/db/conn") == paths.index("app/db") + 1
    assert all(c.run_time >= 0 for c in report.children)
    [record] = [
        r for r in caplog.records if getattr(r, "procman_event", "") == "procman.exit_report"
    ]
    assert record.levelno == logging.WARNING  # a child failed
    assert record.procman_report == report.as_dicts()  # type: ignore[attr-defined]
    assert record.procman_counts["failed"] == 2  # type: ignore[attr-defined]
    assert "app/db/conn failed" in record.getMessage()


async def test_restarts_and_the_last_error_are_counted() -> None:
    recorder = ExitRecorder()
    root = ProcessManager("app", observers=[recorder]).insert(flaky(3))
    await root.process_start()
    [outcome] = [c for c in recorder.report().children if c.path == "app/flaky"]
    assert outcome.state == "stopped"
    assert outcome.restarts == 3
    assert outcome.last_error == "RuntimeError: attempt 3 failed"


def test_the_table() -> None:
    recorder = ExitRecorder()
    assert exit_report(recorder, logger=None).summary() == "procman exit report: no child ran"
    report = ExitReport(())
    assert report.table().splitlines()[1].split() == [
        "CHILD",
        "STATE",
        "RESTARTS",
        "RUN",
        "TIME",
        "LAST",
        "ERROR",
    ]


async def test_a_clean_report_is_info(caplog: pytest.LogCaptureFixture) -> None:
    recorder = ExitRecorder()
    root = ProcessManager("app", observers=[LoggingObserver(), recorder])
    root.insert(runnable(ok, name="job"))
    await root.process_start()
    with caplog.at_level(logging.INFO, logger="procman"):
        report = exit_report(recorder)
    assert report.counts() == {"stopped": 1}
    assert caplog.records[-1].levelno == logging.INFO
    table = report.table()
    assert "app/job" in table and "stopped" in table


APP = """
import asyncio
from procman import ProcessManager, RuntimeContext, runnable

async def bad(ctx: RuntimeContext) -> None:
    await asyncio.sleep(0.05)
    raise RuntimeError("disk full")

def tree() -> ProcessManager:
    nested = ProcessManager("store").insert(runnable(bad, name="writer"))
    return ProcessManager("app").insert(nested)
"""


def test_the_cli_writes_the_table_on_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "reportapp.py").write_text(APP)
    main, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCMAN_")}
    proc = subprocess.Popen(
        [*_command(), "reportapp:tree"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=secondary,
    )
    os.close(secondary)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                data = os.read(main, 4096)
            except OSError:  # EIO: the terminal's other end closed
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=30) == 1
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        os.close(main)
    out = b"".join(chunks).decode().replace("\r\n", "\n")
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("CHILD"))
    assert lines[header - 1] == "procman exit report"
    rows = [line.split(None, 4) for line in lines[header + 1 : header + 4]]
    assert rows[0][:3] == ["app/store", "failed", "0"]
    assert rows[0][4] == "RuntimeError: disk full"
    assert rows[1][:3] == ["app/store/writer", "failed", "0"]
    assert rows[2][:2] == ["app/SignalReceiver", "stopped"]


async def test_a_child_that_does_not_stop_in_time_is_force_cancelled() -> None:
    import asyncio

    async def stubborn(ctx: RuntimeContext) -> None:
        while True:  # ignores the shutdown message: only the cancellation stops it
            await ctx.tick(asyncio.sleep(10))

    recorder = ExitRecorder()
    root = ProcessManager("app", observers=[recorder], shutdown_grace_period=0.05)
    root.insert(runnable(stubborn, name="stubborn")).insert(runnable(ok, name="job"))
    task = asyncio.ensure_future(root.process_start())
    await root.wait_started()
    await root.process_handle().shutdown()
    await task
    states = {c.path: c.state for c in recorder.report().children}
    assert states == {"app/stubborn": "force-cancelled", "app/job": "stopped"}


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.0, "0ms"),
        (0.0449, "45ms"),
        (0.9994, "999ms"),
        (1.0, "1.0s"),
        (59.94, "59.9s"),
        (65.0, "1m05.0s"),
        (3599.0, "59m59.0s"),
        (7380.0, "2h03m"),
    ],
)
def test_run_times_are_shown_for_people(seconds: float, shown: str) -> None:
    # a sub-second run was shown as "0.0s"
    from procman.report import ChildOutcome, ExitReport, duration

    assert duration(seconds) == shown
    report = ExitReport((ChildOutcome("root/a", "stopped", 0, seconds, None),))
    assert f"(0 restarts, {shown})" in report.summary()
    assert f"  {shown}" in report.table()
