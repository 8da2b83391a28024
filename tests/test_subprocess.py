"""procman.builtin.Subprocess: real OS processes under supervision.

Every test starts real programs (``sys.executable -c SCRIPT``) and
synchronises on what they print (their output arrives as log records), on
their exit, or on the pids they report; never on sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pickle
import signal
import socket
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Recorder

import procman.guard
from procman import (
    ChildState,
    ProcessManager,
    ProcessManagerBuilder,
    ReadyTimeoutError,
    Restart,
    RestartIntensityExceeded,
)
from procman.builtin import RestartBackoff, RestartSupervisor, Subprocess, SubprocessFailed
from procman.builtin import _process as process_module
from procman.events import ProcessReady, ProcessStopTimedOut
from procman.lowlevel import ChildRecord, current_record

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Unix only")

PY = sys.executable
WAIT = 30.0  # generous: the machine is shared; every wait ends on a real condition


def script(source: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(source)]


class Lines(logging.Handler):
    """Collects the output records of subprocesses and lets a test wait for a line."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._waiters: list[tuple[Callable[[logging.LogRecord], bool], asyncio.Future[Any]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "procman_event", "") != "procman.subprocess.output":
            return
        self.records.append(record)
        for match, fut in self._waiters:
            if not fut.done() and match(record):
                fut.set_result(record)

    def texts(self, child: str | None = None) -> list[str]:
        return [
            r.getMessage()
            for r in self.records
            if child is None or getattr(r, "procman_child", None) == child
        ]

    async def wait_for(self, prefix: str, *, count: int = 1) -> logging.LogRecord:
        """The ``count``-th output line starting with ``prefix`` (waits up to WAIT)."""
        seen = 0

        def match(record: logging.LogRecord) -> bool:
            nonlocal seen
            if record.getMessage().startswith(prefix):
                seen += 1
            return seen >= count

        for record in self.records:
            if match(record):
                return record
        fut: asyncio.Future[logging.LogRecord] = asyncio.get_running_loop().create_future()
        entry = (match, fut)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(fut, WAIT)
        except TimeoutError:
            raise AssertionError(f"no line {prefix!r} (x{count}); got {self.texts()}") from None
        finally:
            self._waiters.remove(entry)


@pytest.fixture
def lines() -> Iterator[Lines]:
    logger = logging.getLogger("procman.subprocess")
    handler = Lines()
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def not_our_child(pid: int) -> bool:
    """True when ``pid`` is no child of ours waiting to be reaped (it was reaped)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


PR_SET_CHILD_SUBREAPER = 36


@contextlib.contextmanager
def subreaper() -> Iterator[None]:
    """Make this process the reaper of orphaned descendants (Linux), so a test can
    see how a grandchild died (PID 1 here does not reap promptly)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("needs prctl(PR_SET_CHILD_SUBREAPER)")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip("prctl(PR_SET_CHILD_SUBREAPER) refused")
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


async def reap_orphan(pid: int) -> int:
    """Wait (bounded) for the orphaned ``pid`` to die and reap it; its wait status."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while loop.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 (non-blocking)
        if done == pid:
            return status
        await asyncio.sleep(0.01)
    raise AssertionError(f"process {pid} still alive")


async def run_tree(
    *children: Any, grace: float = 10.0
) -> tuple[ProcessManager, asyncio.Task[None]]:
    manager = ProcessManager("root", shutdown_grace_period=grace)
    for child in children:
        manager.insert(child)
    task = asyncio.create_task(manager.process_start())
    await manager.wait_started()
    return manager, task


WAITS_FOR_SIGTERM = """
    import time
    print("ready", flush=True)
    time.sleep(600)
"""


# -- arguments -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "names"),
    [
        ({"argv": "prog --flag"}, TypeError, "argv"),
        ({"argv": b"prog"}, TypeError, "argv"),
        ({"argv": []}, ValueError, "argv"),
        ({"argv": [""]}, ValueError, "argv[0]"),
        ({"argv": ["prog", 3]}, TypeError, "argv[1]"),
        ({"argv": ["prog", "a\0b"]}, ValueError, "argv[1]"),
        ({"argv": 42}, TypeError, "argv"),
        ({"name": ""}, ValueError, "name"),
        ({"name": 3}, TypeError, "name"),
        ({"env": ["A=1"]}, TypeError, "env"),
        ({"env": {"A": 1}}, TypeError, "env"),
        ({"env": {"A=B": "1"}}, ValueError, "env"),
        ({"cwd": 3}, TypeError, "cwd"),
        ({"stop_signal": "SIGTERM"}, TypeError, "stop_signal"),
        ({"stop_signal": True}, TypeError, "stop_signal"),
        ({"stop_signal": 12345}, ValueError, "stop_signal"),
        ({"reload_signal": 1.5}, TypeError, "reload_signal"),
        ({"output": "file"}, ValueError, "output"),
        ({"stdout_level": "LOUD"}, ValueError, "stdout_level"),
        ({"stderr_level": 2.5}, TypeError, "stderr_level"),
        ({"ready_pattern": "("}, ValueError, "ready_pattern"),
        ({"ready_pattern": 3}, TypeError, "ready_pattern"),
        ({"ready_port": "80"}, TypeError, "ready_port"),
        ({"ready_port": 0}, ValueError, "ready_port"),
        ({"ready_port": 70000}, ValueError, "ready_port"),
        ({"ready_host": ""}, ValueError, "ready_host"),
        ({"ready_pattern": "x", "ready_port": 80}, ValueError, "ready_port"),
        ({"ready_pattern": "x", "output": "inherit"}, ValueError, "ready_pattern"),
    ],
)
def test_invalid_arguments_are_refused_at_the_call(
    kwargs: dict[str, Any], error: type[Exception], names: str
) -> None:
    argv = kwargs.pop("argv", ["prog"])
    with pytest.raises(error, match=names.replace("[", r"\[").replace("]", r"\]")):
        Subprocess(argv, **kwargs)


def test_defaults_and_accepted_forms(tmp_path: Path) -> None:
    sub = Subprocess([Path("/usr/bin/env"), "true"])
    assert sub.process_name() == "env"
    assert sub.argv == ("/usr/bin/env", "true")
    assert sub.pid is None and sub.returncode is None
    assert sub.logger.name == "procman.subprocess.env"
    named = Subprocess(
        ("prog",),
        name="web",
        cwd=tmp_path,
        stop_signal=signal.SIGINT,
        reload_signal=None,
        output="discard",
        stdout_level="debug",
        stderr_level=logging.ERROR,
        ready_pattern="listening",
    )
    assert named.process_name() == "web"
    assert "web" in repr(named)


def test_subprocess_failed_is_a_procman_error_and_pickles() -> None:
    exc = SubprocessFailed(["prog", "a b"], -9, "prog")
    assert isinstance(exc, procman.ProcmanError)
    assert exc.signal is signal.SIGKILL
    assert "prog 'a b'" in str(exc) and "SIGKILL" in str(exc)
    again = pickle.loads(pickle.dumps(exc))
    assert (again.argv, again.returncode, str(again)) == (exc.argv, exc.returncode, str(exc))


# -- exit statuses -----------------------------------------------------------------
async def test_exit_status_zero_is_a_clean_stop() -> None:
    sub = Subprocess(script("print('done')"), output="discard")
    await asyncio.wait_for(sub.process_start(), WAIT)
    assert sub.returncode == 0
    assert sub.pid is None


async def test_nonzero_exit_status_fails_the_child_and_the_tree() -> None:
    argv = script("import sys; sys.exit(3)")
    sub = Subprocess(argv, name="bad", output="discard")
    _, task = await run_tree(sub)
    with pytest.raises(SubprocessFailed) as info:
        await asyncio.wait_for(task, WAIT)
    exc = info.value
    assert exc.returncode == 3
    assert exc.argv == tuple(argv)
    assert exc.signal is None
    assert "'bad'" in str(exc) and "exited with status 3" in str(exc) and PY in str(exc)


async def test_death_by_a_signal_is_a_failure() -> None:
    sub = Subprocess(
        script("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), output="discard"
    )
    with pytest.raises(SubprocessFailed) as info:
        await asyncio.wait_for(sub.process_start(), WAIT)
    assert info.value.returncode == -signal.SIGKILL
    assert info.value.signal is signal.SIGKILL
    assert "killed by SIGKILL" in str(info.value)


async def test_missing_binary_fails_naming_the_argv(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-program")
    sub = Subprocess([missing, "--flag"])
    with pytest.raises(SubprocessFailed) as info:
        await asyncio.wait_for(sub.process_start(), WAIT)
    exc = info.value
    assert exc.returncode is None
    assert isinstance(exc.__cause__, FileNotFoundError)
    assert f"{missing} --flag" in str(exc) and "could not be started" in str(exc)


async def test_permission_denied_fails_naming_the_argv(tmp_path: Path) -> None:
    program = tmp_path / "not-executable"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o644)
    sub = Subprocess([program])
    _, task = await run_tree(sub)
    with pytest.raises(SubprocessFailed) as info:
        await asyncio.wait_for(task, WAIT)
    assert isinstance(info.value.__cause__, PermissionError)
    assert str(program) in str(info.value)


async def test_missing_working_directory_fails_the_start(tmp_path: Path) -> None:
    sub = Subprocess(script("pass"), cwd=tmp_path / "nowhere")
    with pytest.raises(SubprocessFailed) as info:
        await asyncio.wait_for(sub.process_start(), WAIT)
    assert isinstance(info.value.__cause__, FileNotFoundError)


# -- shutdown ----------------------------------------------------------------------
async def test_shutdown_sends_stop_signal_and_death_by_it_is_clean(lines: Lines) -> None:
    sub = Subprocess(script(WAITS_FOR_SIGTERM), name="sleeper")
    manager, task = await run_tree(sub)
    record = await lines.wait_for("ready")
    pid = record.procman_pid  # type: ignore[attr-defined]
    assert sub.pid == pid
    await asyncio.wait_for(manager.process_handle().shutdown(), WAIT)
    assert await task is None
    assert sub.returncode == -signal.SIGTERM
    assert gone(pid) and not_our_child(pid)


async def test_a_program_handling_the_stop_signal_exits_zero(lines: Lines) -> None:
    source = """
        import signal, sys, time
        signal.signal(signal.SIGUSR1, lambda *_: sys.exit(0))
        print("ready", flush=True)
        while True:
            time.sleep(1)
    """
    sub = Subprocess(script(source), stop_signal=signal.SIGUSR1)
    manager, task = await run_tree(sub)
    await lines.wait_for("ready")
    await asyncio.wait_for(manager.process_handle().shutdown(), WAIT)
    assert await task is None
    assert sub.returncode == 0


async def test_a_failing_exit_during_shutdown_is_still_a_failure(lines: Lines) -> None:
    source = """
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(4))
        print("ready", flush=True)
        while True:
            time.sleep(1)
    """
    sub = Subprocess(script(source))
    manager, task = await run_tree(sub)
    await lines.wait_for("ready")
    await manager.process_handle().shutdown()
    with pytest.raises(SubprocessFailed) as info:
        await asyncio.wait_for(task, WAIT)
    assert info.value.returncode == 4


async def test_a_program_ignoring_sigterm_is_killed_after_the_grace_period(
    lines: Lines,
) -> None:
    source = """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        while True:
            time.sleep(1)
    """
    sub = Subprocess(script(source), name="stubborn")
    recorder = Recorder()
    manager = ProcessManager("root", shutdown_grace_period=0.3, observers=[recorder])
    manager.insert(sub)
    task = asyncio.create_task(manager.process_start())
    record = await lines.wait_for("ready")
    pid = record.procman_pid  # type: ignore[attr-defined]
    await asyncio.wait_for(manager.process_handle().shutdown(), WAIT)
    await asyncio.wait_for(task, WAIT)
    assert [type(e) for e in recorder.of(ProcessStopTimedOut)] == [ProcessStopTimedOut]
    assert sub.returncode == -signal.SIGKILL
    assert sub.pid is None
    assert gone(pid) and not_our_child(pid)  # killed and reaped: no zombie


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else set()


async def test_cancelling_the_run_kills_and_reaps_the_group(lines: Lines) -> None:
    sub = Subprocess(script(WAITS_FOR_SIGTERM))
    await asyncio.wait_for(Subprocess(script("pass")).process_start(), WAIT)  # warm up the loop
    fds = open_fds()
    task = asyncio.create_task(sub.process_start())
    record = await lines.wait_for("ready")
    pid = record.procman_pid  # type: ignore[attr-defined]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)
    assert sub.returncode == -signal.SIGKILL
    assert gone(pid) and not_our_child(pid)
    assert open_fds() == fds  # pipes and pidfd closed


IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('grandchild ready', flush=True); time.sleep(600)"
)
GRANDCHILD = f"""
    import signal, subprocess, sys
    IGNORES_SIGTERM = {IGNORES_SIGTERM!r}
    grandchild = subprocess.Popen([sys.executable, "-c", IGNORES_SIGTERM])
    print(f"grandchild {{grandchild.pid}}", flush=True)
    signal.signal(signal.SIGUSR1, lambda *_: sys.exit(0))
    print("parent ready", flush=True)
    signal.pause()
"""


@pytest.mark.parametrize("watcher", ["pidfd", "thread", "thread-without-waitid"])
async def test_a_grandchild_ignoring_sigterm_is_killed_with_the_group(
    lines: Lines, monkeypatch: pytest.MonkeyPatch, watcher: str
) -> None:
    if watcher != "pidfd":
        monkeypatch.setattr(process_module, "_USE_PIDFD", False)
    if watcher == "thread-without-waitid":
        monkeypatch.delattr(os, "waitid", raising=False)
    with subreaper():
        sub = Subprocess(script(GRANDCHILD), name="family")
        manager, task = await run_tree(sub, grace=0.5)
        gpid = int((await lines.wait_for("grandchild ")).getMessage().split()[1])
        await lines.wait_for("grandchild ready")
        await lines.wait_for("parent ready")
        pid = sub.pid
        assert pid is not None
        await asyncio.wait_for(manager.process_handle().shutdown(), WAIT)
        assert await asyncio.wait_for(task, WAIT) is None  # the parent died by SIGTERM: clean
        assert sub.returncode == -signal.SIGTERM
        status = await reap_orphan(gpid)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        assert gone(gpid)
        assert gone(pid) and not_our_child(pid)


async def test_processes_left_in_the_group_are_killed_when_the_program_exits(
    lines: Lines,
) -> None:
    source = f"""
        import subprocess, sys
        IGNORES_SIGTERM = {IGNORES_SIGTERM!r}
        grandchild = subprocess.Popen([sys.executable, "-c", IGNORES_SIGTERM])
        print(f"grandchild {{grandchild.pid}}", flush=True)
        sys.stdout.flush()
        sys.stdin.read()  # /dev/null: returns at once
    """
    with subreaper():
        # The program exits 0 on its own as soon as it has started the grandchild;
        # the output pipe stays open until the grandchild is gone.
        sub = Subprocess(script(source), name="leaver")
        await asyncio.wait_for(sub.process_start(), WAIT)
        assert sub.returncode == 0
        gpid = int(next(t for t in lines.texts() if t.startswith("grandchild ")).split()[1])
        status = await reap_orphan(gpid)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


# -- reload ------------------------------------------------------------------------
HUP_COUNTER = """
    import signal, sys, time
    count = 0
    def on_signal(signum, frame):
        global count
        count += 1
        print(f"{signal.Signals(signum).name} {count}", flush=True)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGUSR2, on_signal)
    print("ready", flush=True)
    while True:
        time.sleep(1)
"""


async def test_reload_sends_sighup_to_the_program(lines: Lines) -> None:
    sub = Subprocess(script(HUP_COUNTER), name="hup")
    manager, task = await run_tree(sub)
    await lines.wait_for("ready")
    await manager.process_handle().reload()
    await lines.wait_for("SIGHUP 1")
    await manager.process_handle().reload()
    await lines.wait_for("SIGHUP 2")
    await asyncio.wait_for(manager.process_handle().shutdown(), WAIT)
    assert await task is None


async def test_reload_signal_is_configurable(lines: Lines) -> None:
    sub = Subprocess(script(HUP_COUNTER), reload_signal=signal.SIGUSR2)
    manager, task = await run_tree(sub)
    await lines.wait_for("ready")
    await sub.process_handle().reload()
    await lines.wait_for("SIGUSR2 1")
    await asyncio.wait_for(manager.process_handle().shutdown(), WAIT)
    await task
    assert not [t for t in lines.texts() if t.startswith("SIGHUP")]


async def test_reload_signal_none_ignores_reloads(lines: Lines) -> None:
    # SIGHUP's default action would kill this program: status -SIGHUP, a failure.
    sub = Subprocess(script(WAITS_FOR_SIGTERM), reload_signal=None)
    manager, task = await run_tree(sub)
    await lines.wait_for("ready")
    await sub.process_handle().reload()
    await asyncio.wait_for(manager.process_handle().shutdown(), WAIT)
    assert await task is None
    assert sub.returncode == -signal.SIGTERM


# -- output ------------------------------------------------------------------------
async def test_output_lines_become_log_records_with_the_child_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="procman.subprocess")
    source = r"""
        import sys
        print("hello stdout")
        print("100% done, 50%s", flush=True)
        sys.stderr.write("oops on stderr\r\n")
        sys.stdout.buffer.write(b"bad \xff byte\n")
        sys.stdout.write("x" * 70000 + "\n")
        sys.stdout.write("no newline at the end")
    """
    sub = Subprocess(script(source), name="talker")
    manager = ProcessManager("root")
    nested = ProcessManager("inner")
    nested.insert(sub)
    manager.insert(nested)
    await asyncio.wait_for(manager.process_start(), WAIT)
    output = [
        r for r in caplog.records if getattr(r, "procman_event", "") == "procman.subprocess.output"
    ]
    assert {r.name for r in output} == {"procman.subprocess.talker"}
    by_text = {r.getMessage(): r for r in output}
    out = by_text["hello stdout"]
    assert out.levelno == logging.INFO
    assert out.procman_stream == "stdout"  # type: ignore[attr-defined]
    assert out.procman_child == "talker"  # type: ignore[attr-defined]
    assert out.procman_supervisor == "root/inner"  # type: ignore[attr-defined]
    assert isinstance(out.procman_pid, int)  # type: ignore[attr-defined]
    assert "100% done, 50%s" in by_text
    err = by_text["oops on stderr"]
    assert err.levelno == logging.WARNING
    assert err.procman_stream == "stderr"  # type: ignore[attr-defined]
    assert "bad \ufffd byte" in by_text
    long_pieces = [r.getMessage() for r in output if r.getMessage().startswith("xxx")]
    assert "".join(long_pieces) == "x" * 70000 and len(long_pieces) == 2
    assert "no newline at the end" in by_text
    stdout_order = [r.getMessage() for r in output if r.procman_stream == "stdout"]  # type: ignore[attr-defined]
    assert stdout_order[:2] == ["hello stdout", "100% done, 50%s"]
    spawned = [
        r for r in caplog.records if getattr(r, "procman_event", "") == "procman.subprocess.spawned"
    ]
    assert len(spawned) == 1 and spawned[0].procman_child == "talker"  # type: ignore[attr-defined]


async def test_output_levels_are_configurable_and_disabled_levels_cost_no_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="procman.subprocess")
    source = "import sys; print('quiet'); print('loud', file=sys.stderr)"
    sub = Subprocess(script(source), stdout_level="DEBUG", stderr_level=logging.ERROR)
    await asyncio.wait_for(sub.process_start(), WAIT)
    output = [
        r for r in caplog.records if getattr(r, "procman_event", "") == "procman.subprocess.output"
    ]
    assert [(r.getMessage(), r.levelno) for r in output] == [("loud", logging.ERROR)]
    assert output[0].procman_supervisor == ""  # type: ignore[attr-defined]  # standalone


async def test_inherit_mode_writes_to_our_stdout_and_stderr(
    capfd: pytest.CaptureFixture[str], lines: Lines
) -> None:
    source = "import sys; print('to stdout'); print('to stderr', file=sys.stderr)"
    sub = Subprocess(script(source), output="inherit")
    await asyncio.wait_for(sub.process_start(), WAIT)
    captured = capfd.readouterr()
    assert "to stdout" in captured.out
    assert "to stderr" in captured.err
    assert lines.records == []


async def test_discard_mode_drops_the_output(
    capfd: pytest.CaptureFixture[str], lines: Lines
) -> None:
    source = "import sys; print('to stdout'); print('to stderr', file=sys.stderr)"
    sub = Subprocess(script(source), output="discard")
    await asyncio.wait_for(sub.process_start(), WAIT)
    captured = capfd.readouterr()
    assert "to stdout" not in captured.out + captured.err
    assert "to stderr" not in captured.out + captured.err
    assert lines.records == []


async def test_stdin_is_dev_null(lines: Lines) -> None:
    sub = Subprocess(script("import sys; print(repr(sys.stdin.read()))"))
    await asyncio.wait_for(sub.process_start(), WAIT)
    assert lines.texts() == ["''"]


async def test_output_records_carry_the_child_trace_context() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from procman.observe import OtelTracingObserver, TraceContextFilter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    logger = logging.getLogger("procman.subprocess")
    handler = Lines()
    handler.addFilter(TraceContextFilter())
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        manager = ProcessManager("root", observers=[OtelTracingObserver(provider)])
        manager.insert(Subprocess(script("print('traced line')"), name="traced"))
        await asyncio.wait_for(manager.process_start(), WAIT)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        provider.shutdown()
    [span] = [
        s
        for s in exporter.get_finished_spans()
        if s.name == "procman.child.run" and (s.attributes or {})["procman.child.name"] == "traced"
    ]
    ctx = span.get_span_context()
    assert ctx is not None
    [record] = handler.records
    assert record.getMessage() == "traced line"
    assert record.otelTraceID == format(ctx.trace_id, "032x")  # type: ignore[attr-defined]
    assert record.otelSpanID == format(ctx.span_id, "016x")  # type: ignore[attr-defined]


# -- environment and working directory ---------------------------------------------
async def test_env_is_merged_over_ours_and_cwd_is_used(
    lines: Lines, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROCMAN_TEST_KEPT", "kept")
    monkeypatch.setenv("PROCMAN_TEST_REPLACED", "old")
    monkeypatch.setenv("PROCMAN_TEST_REMOVED", "present")
    source = """
        import os
        for key in ("PROCMAN_TEST_KEPT", "PROCMAN_TEST_REPLACED", "PROCMAN_TEST_REMOVED",
                    "PROCMAN_TEST_NEW"):
            print(f"{key}={os.environ.get(key, '<unset>')}")
        print(f"cwd={os.getcwd()}")
    """
    sub = Subprocess(
        script(source),
        env={
            "PROCMAN_TEST_REPLACED": "new",
            "PROCMAN_TEST_NEW": "added",
            "PROCMAN_TEST_REMOVED": None,
        },
        cwd=tmp_path,
    )
    await asyncio.wait_for(sub.process_start(), WAIT)
    assert lines.texts() == [
        "PROCMAN_TEST_KEPT=kept",
        "PROCMAN_TEST_REPLACED=new",
        "PROCMAN_TEST_REMOVED=<unset>",
        "PROCMAN_TEST_NEW=added",
        f"cwd={os.path.realpath(tmp_path)}",  # noqa: ASYNC240
    ]
    assert os.environ["PROCMAN_TEST_REPLACED"] == "old"  # ours is untouched


# -- readiness ---------------------------------------------------------------------
class ReadySpy:
    """Records each guard.ready() call: in which child's task it ran."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[ChildRecord | None, asyncio.Task[Any] | None]] = []
        self.signalled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        original = procman.guard.signal_ready

        def spy() -> None:
            self.calls.append((current_record(), asyncio.current_task()))
            original()
            if not self.signalled.done():
                self.signalled.set_result(None)

        monkeypatch.setattr(procman.guard, "signal_ready", spy)

    async def wait(self) -> None:
        await asyncio.wait_for(asyncio.shield(self.signalled), WAIT)


async def test_ready_pattern_signals_readiness_from_the_child_task(
    lines: Lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = ReadySpy(monkeypatch)
    source = """
        import signal
        print("warming up", flush=True)
        signal.signal(signal.SIGUSR1, lambda *_: print("listening on 8080", flush=True))
        print("armed", flush=True)
        while True:
            signal.pause()
    """
    sub = Subprocess(script(source), name="srv", ready_pattern=r"listening on \d+")
    manager, task = await run_tree(sub)
    await lines.wait_for("armed")
    assert spy.calls == []  # "warming up" did not match
    assert sub.pid is not None
    os.kill(sub.pid, signal.SIGUSR1)
    await spy.wait()
    [(rec, _task)] = spy.calls
    assert rec is not None and rec.name == "srv"  # the child's own task
    assert rec.ready
    await lines.wait_for("listening on")
    os.kill(sub.pid, signal.SIGUSR1)  # a second match signals nothing more
    await lines.wait_for("listening on", count=2)
    assert len(spy.calls) == 1
    await asyncio.wait_for(manager.process_handle().shutdown(), WAIT)
    assert await task is None


async def test_ready_pattern_works_with_discarded_output(
    lines: Lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = ReadySpy(monkeypatch)
    sub = Subprocess(
        script("import sys, time; print('ready!', file=sys.stderr, flush=True); time.sleep(600)"),
        output="discard",
        ready_pattern="^ready!$",
    )
    manager, task = await run_tree(sub)
    await spy.wait()
    assert lines.records == []
    await asyncio.wait_for(manager.process_handle().shutdown(), WAIT)
    await task


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_ready_port_signals_once_the_port_accepts(
    lines: Lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = ReadySpy(monkeypatch)
    port = free_port()
    source = f"""
        import signal, socket
        signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGUSR1}})
        print("waiting for the go", flush=True)
        signal.sigwait({{signal.SIGUSR1}})
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", {port}))
        server.listen(16)
        print("listening", flush=True)
        while True:
            server.accept()[0].close()
    """
    sub = Subprocess(script(source), name="tcp", ready_port=port)
    manager, task = await run_tree(sub)
    await lines.wait_for("waiting for the go")
    assert spy.calls == []
    assert sub.pid is not None
    os.kill(sub.pid, signal.SIGUSR1)
    await spy.wait()
    [(rec, _task)] = spy.calls
    assert rec is not None and rec.name == "tcp" and rec.ready
    await asyncio.wait_for(manager.process_handle().shutdown(), WAIT)
    assert await task is None


async def test_without_readiness_options_nothing_is_signalled(
    lines: Lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = ReadySpy(monkeypatch)
    sub = Subprocess(script(WAITS_FOR_SIGTERM))
    manager, task = await run_tree(sub)
    await lines.wait_for("ready")
    [child] = manager.snapshot().children
    assert child.ready and child.state is ChildState.RUNNING
    await asyncio.wait_for(manager.process_handle().shutdown(), WAIT)
    await task
    assert spy.calls == []


async def test_a_program_that_exits_before_matching_is_not_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = ReadySpy(monkeypatch)
    sub = Subprocess(script("print('bye')"), ready_pattern="never", output="discard")
    await asyncio.wait_for(sub.process_start(), WAIT)
    assert spy.calls == []


# -- restarts ----------------------------------------------------------------------
async def test_shutdown_before_start_does_not_run_the_program(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    sub = Subprocess(script(f"open({str(marker)!r}, 'w').close()"))
    await sub.process_handle().shutdown()
    await asyncio.wait_for(sub.process_start(), WAIT)
    assert not marker.exists()
    assert sub.returncode is None
    await asyncio.wait_for(sub.process_start(), WAIT)  # the next start runs it
    assert marker.exists() and sub.returncode == 0


async def test_start_shutdown_start_again(lines: Lines) -> None:
    sub = Subprocess(script(WAITS_FOR_SIGTERM), name="again")
    pids = []
    for run in (1, 2):
        task = asyncio.create_task(sub.process_start())
        record = await lines.wait_for("ready", count=run)
        pids.append(record.procman_pid)  # type: ignore[attr-defined]
        await sub.process_handle().shutdown()
        await asyncio.wait_for(task, WAIT)
        assert sub.returncode == -signal.SIGTERM
    assert pids[0] != pids[1]


async def test_a_crashing_program_is_restarted_by_restart_supervisor(lines: Lines) -> None:
    source = """
        import sys
        print("run", flush=True)
        sys.exit(5)
    """
    recorder = Recorder()
    supervisor = RestartSupervisor(
        Subprocess(script(source), name="crasher"),
        RestartBackoff(initial=0.01, max=0.05),
    )
    manager = ProcessManager("root", observers=[recorder])
    manager.insert(supervisor)
    task = asyncio.create_task(manager.process_start())
    await lines.wait_for("run", count=3)
    await asyncio.wait_for(manager.process_handle().shutdown(), WAIT)
    assert await asyncio.wait_for(task, WAIT) is None
    assert supervisor.restart_count >= 2
    failures = [e for e in recorder.events if e.name == "procman.child.failed"]
    assert len(failures) >= 2
    assert all(isinstance(e.exception, SubprocessFailed) for e in failures)  # type: ignore[attr-defined]
    assert {r.procman_child for r in lines.records} == {"crasher"}  # type: ignore[attr-defined]


async def test_restart_supervisor_forwards_shutdown_and_reload(lines: Lines) -> None:
    sub = Subprocess(script(HUP_COUNTER), name="hup")
    supervisor = RestartSupervisor(sub)
    manager, task = await run_tree(supervisor)
    await lines.wait_for("ready")
    await manager.process_handle().reload()
    await lines.wait_for("SIGHUP 1")
    await asyncio.wait_for(manager.process_handle().shutdown(), WAIT)
    assert await task is None
    assert supervisor.restart_count == 0
    assert sub.returncode == -signal.SIGTERM


# -- with the manager's supervision policies ----------------------------------------
SIGNALLED_LISTENER = """
    import signal, sys
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    print("armed", flush=True)
    signal.sigwait({signal.SIGUSR1})
    print("listening", flush=True)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
    signal.pause()
"""


async def test_wait_ready_child_is_starting_until_the_pattern_matches(lines: Lines) -> None:
    recorder = Recorder()
    sub = Subprocess(script(SIGNALLED_LISTENER), name="db", ready_pattern="^listening$")
    manager = ProcessManager("root", observers=[recorder])
    manager.insert(sub, wait_ready=True, ready_timeout=WAIT)
    task = asyncio.create_task(manager.process_start())
    await lines.wait_for("armed")
    [child] = manager.snapshot().children
    assert child.state is ChildState.STARTING and not child.ready
    assert not manager.snapshot().ready
    assert sub.pid is not None
    os.kill(sub.pid, signal.SIGUSR1)
    await asyncio.wait_for(manager.wait_ready(), WAIT)
    [child] = manager.snapshot().children
    assert child.state is ChildState.RUNNING and child.ready
    assert [e.child for e in recorder.of(ProcessReady)] == ["db"]  # type: ignore[attr-defined]
    await asyncio.wait_for(manager.process_handle().shutdown(), WAIT)
    assert await task is None


async def test_ordered_start_runs_the_next_program_once_the_port_accepts(lines: Lines) -> None:
    port = free_port()
    listener = f"""
        import signal, socket
        signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGUSR1}})
        print("armed", flush=True)
        signal.sigwait({{signal.SIGUSR1}})
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", {port}))
        server.listen(16)
        while True:
            server.accept()[0].close()
    """
    db = Subprocess(script(listener), name="db", ready_port=port)
    app = Subprocess(script(WAITS_FOR_SIGTERM), name="app")
    manager = (
        ProcessManagerBuilder()
        .name("root")
        .ordered(True)
        .pre_insert(db, wait_ready=True, ready_timeout=WAIT)
        .pre_insert(app)
        .build()
    )
    task = asyncio.create_task(manager.process_start())
    await lines.wait_for("armed")
    assert app.pid is None  # not started before db is ready
    assert db.pid is not None
    os.kill(db.pid, signal.SIGUSR1)
    record = await lines.wait_for("ready")
    assert record.procman_child == "app"  # type: ignore[attr-defined]
    await asyncio.wait_for(manager.process_handle().shutdown(), WAIT)
    assert await task is None
    assert db.returncode == -signal.SIGTERM and app.returncode == -signal.SIGTERM


async def test_ready_timeout_kills_and_reaps_the_program(lines: Lines) -> None:
    sub = Subprocess(script(WAITS_FOR_SIGTERM), name="slow", ready_pattern="never printed")
    manager = ProcessManager("root")
    manager.insert(sub, wait_ready=True, ready_timeout=0.5)
    task = asyncio.create_task(manager.process_start())
    record = await lines.wait_for("ready")
    pid = record.procman_pid  # type: ignore[attr-defined]
    with pytest.raises(ReadyTimeoutError):
        await asyncio.wait_for(task, WAIT)
    assert sub.returncode == -signal.SIGKILL
    assert gone(pid) and not_our_child(pid)


async def test_the_manager_restarts_a_crashing_program_up_to_its_intensity(
    lines: Lines,
) -> None:
    sub = Subprocess(script("import sys; print('run', flush=True); sys.exit(7)"), name="crash")
    manager = (
        ProcessManagerBuilder()
        .name("root")
        .intensity(max_restarts=2, within=60)
        .backoff(RestartBackoff(initial=0.01, max=0.05))
        .pre_insert(sub)
        .build()
    )
    with pytest.raises(RestartIntensityExceeded) as info:
        await asyncio.wait_for(manager.process_start(), WAIT)
    assert isinstance(info.value.__cause__, SubprocessFailed)
    assert info.value.__cause__.returncode == 7
    assert lines.texts("crash") == ["run"] * 3  # the first run and two restarts


async def test_a_permanent_program_is_restarted_after_a_clean_exit(lines: Lines) -> None:
    sub = Subprocess(script("print('run', flush=True)"), name="oneshot")
    manager = (
        ProcessManagerBuilder()
        .name("root")
        .intensity(max_restarts=100, within=60)
        .backoff(RestartBackoff(initial=0.01, max=0.01))
        .pre_insert(sub, restart=Restart.PERMANENT)
        .build()
    )
    task = asyncio.create_task(manager.process_start())
    await lines.wait_for("run", count=3)
    await asyncio.wait_for(manager.process_handle().shutdown(), WAIT)
    assert await asyncio.wait_for(task, WAIT) is None
