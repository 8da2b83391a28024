"""``procman.run`` from Python: scripts run as subprocesses with real signals.

Ctrl-C and SIGTERM end the program with 130 / 143 and no traceback anywhere;
the README's quick start, run as a new user would, does the same.
"""

from __future__ import annotations

import gc
import logging
import re
import signal
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli_run import Cli

import procman
from procman import ProcessManager, runnable
from procman.launch import TargetError, resolve_target
from procman.testing import wait_until

SCRIPT = """
import asyncio
import logging
import sys

import procman
from procman import Control, ProcessManager, RuntimeContext, RuntimeControlMessage, runnable

log = logging.getLogger("app")


async def worker(ctx: RuntimeContext) -> None:
    log.info("app: running")
    while True:
        match await ctx.tick(asyncio.sleep(0.05)):
            case Control(RuntimeControlMessage.SHUTDOWN):
                return
            case _:
                pass


async def short(ctx: RuntimeContext) -> None:
    log.info("app: running")


async def boom(ctx: RuntimeContext) -> None:
    log.info("app: running")
    raise KeyError("lost")


TREES = {"forever": worker, "short": short, "boom": boom}


def build() -> ProcessManager:
    return ProcessManager("app").insert(runnable(TREES[sys.argv[1]], name="w"))


if __name__ == "__main__":
    if sys.argv[2] == "exit":
        procman.run(build, exit=True)
    status = procman.run(build, log_format=sys.argv[3] if len(sys.argv) > 3 else "text")
    print(f"status={status}", flush=True)
    sys.exit(status)
"""


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "launched.py"
    path.write_text(textwrap.dedent(SCRIPT))
    return path


def python(*args: str, cwd: Path) -> Cli:
    return Cli(*args, cwd=cwd, env={"PYTHONUNBUFFERED": "1"}, command=[sys.executable])


@pytest.mark.parametrize("mode", ["exit", "return"])
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_end_with_128_plus_n_and_no_traceback(
    script: Path, mode: str, sig: signal.Signals, status: int
) -> None:
    proc = python(str(script), "forever", mode, cwd=script.parent)
    try:
        proc.wait_for("app: running")
        proc.signal(sig)
        assert proc.finish() == status, proc.stderr
    finally:
        proc.kill()
    assert "Traceback" not in proc.stderr + proc.stdout
    assert f"app stopped by {sig.name} (exit status {status})" in proc.stderr
    if mode == "return":
        assert f"status={status}" in proc.stdout


@pytest.mark.parametrize(("tree", "status"), [("short", 0), ("boom", 1)])
def test_the_status_is_returned(script: Path, tree: str, status: int) -> None:
    proc = python(str(script), tree, "return", cwd=script.parent)
    try:
        assert proc.finish() == status, proc.stderr
    finally:
        proc.kill()
    assert f"status={status}" in proc.stdout
    assert proc.stderr.count("Traceback") == (1 if status else 0)


def test_json_logs_from_python(script: Path) -> None:
    proc = python(str(script), "boom", "return", "json", cwd=script.parent)
    try:
        assert proc.finish() == 1, proc.stderr
    finally:
        proc.kill()
    import json

    records = [json.loads(line) for line in proc.stderr.splitlines()]
    assert any("KeyError: 'lost'" in r.get("exception", "") for r in records)


def _quick_start(root_dir: Path) -> str:
    readme = (root_dir / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_the_readme_quick_start_uses_the_launcher(root_dir: Path) -> None:
    code = _quick_start(root_dir)
    assert "procman.run(" in code


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_the_readme_quick_start_stops_without_a_traceback(
    root_dir: Path, tmp_path: Path, sig: signal.Signals, status: int
) -> None:
    path = tmp_path / "quickstart.py"
    path.write_text(_quick_start(root_dir))
    proc = python(str(path), cwd=tmp_path)
    try:
        _wait_stdout(proc, "heartbeat")
        proc.signal(sig)
        assert proc.finish() == status, proc.stderr
    finally:
        proc.kill()
    assert "Traceback" not in proc.stderr + proc.stdout


def _wait_stdout(proc: Cli, text: str, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while text not in proc.stdout:
        if time.monotonic() > deadline or proc.proc.poll() is not None:
            pytest.fail(f"no {text!r} on stdout; stderr:\n{proc.stderr}")
        time.sleep(0.02)


# -- in-process: return values and target checks ------------------------------------------------


async def _quick(ctx: object) -> None:
    return None


def test_run_returns_0_for_a_tree_that_ends() -> None:
    root = ProcessManager("inproc").insert(runnable(_quick, name="q"))
    assert procman.run(root) == 0


def test_run_returns_2_for_an_unusable_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert procman.run(lambda: 42) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "the factory returned int" in err


def test_run_with_exit_raises_system_exit() -> None:
    with pytest.raises(SystemExit) as info:
        procman.run(runnable(_quick, name="q"), exit=True)
    assert info.value.code == 0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"metrics_port": 70000}, ValueError),
        ({"otel": "zipkin"}, ValueError),
        ({"log_format": "xml"}, ValueError),
        ({"log_level": "LOUD"}, ValueError),
        ({"grace": -1}, ValueError),
        ({"grace": "5"}, TypeError),
    ],
)
def test_run_rejects_bad_options(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        procman.run(runnable(_quick, name="q"), **kwargs)  # type: ignore[arg-type]


def test_resolve_target_errors() -> None:
    with pytest.raises(TargetError, match="expected MODULE:ATTR"):
        resolve_target("procman")
    with pytest.raises(TargetError, match="no attribute 'nope'"):
        resolve_target("procman:nope")
    assert resolve_target("procman:ProcessManager") is ProcessManager
    assert resolve_target("procman.launch:TargetError.__name__") == "TargetError"


def test_run_restores_the_signal_handlers() -> None:
    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP)
    before = {sig: signal.getsignal(sig) for sig in watched}
    assert procman.run(runnable(_quick, name="q")) == 0
    assert {sig: signal.getsignal(sig) for sig in watched} == before


# -- gc_freeze ------------------------------------------------------------------------------------


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Starts unfrozen; a failing test leaves nothing frozen for the tests after it.

    (Some interpreters start with objects in the permanent generation: 3.12.1 has 375.)
    """
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    yield
    gc.unfreeze()


def _gc_tree(seen: list[int], *, fail: bool) -> ProcessManager:
    """A tree whose child, once the launcher froze, records the freeze count and ends it.

    The launcher freezes right after readiness, in its own task: the child waits for the
    tree to be ready, then (bounded) for the freeze with procman.testing's wait helper.
    """
    root = ProcessManager("gcapp")

    async def probe(ctx: object) -> None:
        await root.wait_ready()
        await wait_until(lambda: gc.get_freeze_count() > 0, what="the launcher's gc.freeze()")
        seen.append(gc.get_freeze_count())
        if fail:
            raise RuntimeError("probe failed after the freeze")
        root.request_shutdown()

    return root.insert(runnable(probe, name="probe"))


FROZE = re.compile(
    r"^gc\.freeze\(\) after start-up: (\d+) objects moved to the permanent generation$"
)


@pytest.mark.parametrize("fail", [False, True])
def test_gc_freeze_freezes_once_ready_and_unfreezes_at_the_end(
    fail: bool, caplog: pytest.LogCaptureFixture, unfrozen: None
) -> None:
    seen: list[int] = []
    with caplog.at_level(logging.INFO, logger="procman.launch"):
        status = procman.run(_gc_tree(seen, fail=fail), gc_freeze=True)
    assert status == (1 if fail else 0)
    assert len(seen) == 1 and seen[0] > 0
    assert gc.get_freeze_count() == 0  # unfrozen when run() returned, after a failure too
    [record] = [r for r in caplog.records if "gc.freeze()" in r.getMessage()]
    assert record.levelno == logging.INFO and record.name == "procman.launch"
    match = FROZE.match(record.getMessage())
    assert match is not None, record.getMessage()
    assert int(match.group(1)) > 0  # frozen objects freed by refcount leave it: not == seen[0]


def test_gc_freeze_is_off_by_default(caplog: pytest.LogCaptureFixture, unfrozen: None) -> None:
    seen: list[int] = []
    root = ProcessManager("gcapp")

    async def probe(ctx: object) -> None:
        await root.wait_ready()
        seen.append(gc.get_freeze_count())
        root.request_shutdown()

    root.insert(runnable(probe, name="probe"))
    with caplog.at_level(logging.INFO, logger="procman.launch"):
        assert procman.run(root) == 0
    assert seen == [0]
    assert gc.get_freeze_count() == 0
    # nothing frozen meanwhile either (a freeze and unfreeze would have been logged)
    assert not [r for r in caplog.records if "gc.freeze()" in r.getMessage()]


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_gc_freeze_must_be_a_bool(value: object, unfrozen: None) -> None:
    with pytest.raises(TypeError, match="gc_freeze"):
        procman.run(runnable(_quick, name="q"), gc_freeze=value)  # type: ignore[arg-type]
    assert gc.get_freeze_count() == 0
