"""``procman run MODULE:ATTR``: the CLI as a subprocess, real signals, loopback HTTP.

Every exit status of the contract (0, 1, 128+N, 2), the PROCMAN_* variables,
the children the CLI adds not keeping the tree alive, an attached
PrometheusMetrics reused, signals during a shutdown ignored, systemd's
NOTIFY_SOCKET. Synchronisation is on log lines read from the child's stderr
and on /healthz, never on sleeps.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

TIMEOUT = 30.0

APP = """
import asyncio
import logging
import os
import signal

from procman import (
    Control, ProcessManager, RuntimeContext, RuntimeControlMessage, runnable,
)

log = logging.getLogger("app")


async def forever(ctx: RuntimeContext) -> None:
    log.info("app: running")
    while True:
        match await ctx.tick(asyncio.sleep(0.05)):
            case Control(RuntimeControlMessage.SHUTDOWN):
                return
            case Control(RuntimeControlMessage.RELOAD):
                log.info("app: reloaded")
            case _:
                pass


async def finite(ctx: RuntimeContext) -> None:
    log.info("app: running")
    await ctx.tick(asyncio.sleep(0.2))


async def boom(ctx: RuntimeContext) -> None:
    log.info("app: running")
    await asyncio.sleep(0.2)
    raise RuntimeError("boom in child")


async def slow_stop(ctx: RuntimeContext) -> None:
    # On shutdown, finish only when the test sends SIGUSR1 (at most APP_STOP_SECONDS).
    finish = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, finish.set)
    log.info("app: running")
    while True:
        match await ctx.tick(asyncio.sleep(0.05)):
            case Control(RuntimeControlMessage.SHUTDOWN):
                log.warning("app: stopping slowly")
                limit = float(os.environ.get("APP_STOP_SECONDS", "20"))
                await asyncio.wait_for(finish.wait(), limit)
                log.warning("app: stopped")
                return
            case _:
                pass


manager = ProcessManager("app").insert(runnable(forever, name="worker"))
worker = runnable(forever, name="worker")
number = 42


def factory() -> ProcessManager:
    return ProcessManager("app").insert(runnable(forever, name="worker"))


async def async_factory():
    await asyncio.sleep(0)
    return runnable(forever, name="worker")


def finite_tree() -> ProcessManager:
    nested = ProcessManager("nested").insert(runnable(finite, name="inner"))
    return ProcessManager("app").insert(runnable(finite, name="job")).insert(nested)


def empty_tree() -> ProcessManager:
    return ProcessManager("app")


def failing_tree() -> ProcessManager:
    nested = ProcessManager("nested").insert(runnable(boom, name="bad"))
    nested.insert(runnable(forever, name="fine"))
    return ProcessManager("app").insert(nested)


def factory_raises() -> ProcessManager:
    raise ValueError("the factory broke")


def returns_int() -> int:
    return 42


def slow_tree() -> ProcessManager:
    return ProcessManager("app", shutdown_grace_period=30).insert(runnable(slow_stop, name="slow"))


def failing_slow() -> ProcessManager:
    root = ProcessManager("app", shutdown_grace_period=30)
    return root.insert(runnable(slow_stop, name="slow")).insert(runnable(boom, name="bad"))


def ordered_never_ready() -> ProcessManager:
    # An ordered start waiting for a child that never becomes ready: the launcher's
    # SignalReceiver child, inserted last, never starts.
    from procman import ProcessManagerBuilder

    builder = ProcessManagerBuilder().name("app").ordered(True)
    return builder.pre_insert(runnable(forever, name="db"), wait_ready=True).build()


def with_intensity() -> ProcessManager:
    # Restarts allowed: a receiver that raised TerminationSignal would be restarted.
    from procman import ProcessManagerBuilder

    builder = ProcessManagerBuilder().name("app").intensity(max_restarts=5, within=60)
    return builder.pre_insert(runnable(forever, name="worker")).build()


RUNS = {"flaky": 0}


async def fails_once(ctx: RuntimeContext) -> None:
    RUNS["flaky"] += 1
    log.info("app: run %d", RUNS["flaky"])
    await asyncio.sleep(0.1)
    if RUNS["flaky"] == 1:
        raise RuntimeError("first run fails")


def group_restart_tree() -> ProcessManager:
    # ONE_FOR_ALL: the failure restarts every child, the launcher's receiver included.
    from procman import ProcessManagerBuilder, Strategy

    builder = ProcessManagerBuilder().name("app").strategy(Strategy.ONE_FOR_ALL)
    builder.intensity(max_restarts=3, within=60)
    return builder.pre_insert(runnable(fails_once, name="flaky")).build()


def with_metrics() -> ProcessManager:
    from prometheus_client import CollectorRegistry, Counter

    from procman_metrics import PrometheusMetrics

    registry = CollectorRegistry()
    Counter("app_marker", "a series only in the application registry", registry=registry).inc()
    metrics = PrometheusMetrics(registry)
    return ProcessManager("app", observers=[metrics]).insert(runnable(forever, name="worker"))


def gc_tree() -> ProcessManager:
    # Once the tree is ready, log the freeze count (with APP_EXPECT_FREEZE=1 after waiting,
    # bounded, for the launcher's gc.freeze(), which follows readiness) and end the tree.
    import gc

    from procman.testing import wait_until

    root = ProcessManager("app")
    # Some interpreters start with objects in the permanent generation (3.12.1: 375).
    before = gc.get_freeze_count()

    async def probe(ctx: RuntimeContext) -> None:
        await root.wait_ready()
        if os.environ.get("APP_EXPECT_FREEZE") == "1":
            await wait_until(lambda: gc.get_freeze_count() > before, timeout=20)
        log.info("app: gc freeze count %d (before %d)", gc.get_freeze_count(), before)
        root.request_shutdown()

    return root.insert(runnable(probe, name="probe"))


def with_default_metrics() -> ProcessManager:
    from procman_metrics import PrometheusMetrics

    root = ProcessManager("app", observers=[PrometheusMetrics()])
    return root.insert(runnable(forever, name="worker"))
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "cliapp.py").write_text(textwrap.dedent(APP))
    (tmp_path / "import_missing.py").write_text("import definitely_missing_module_xyz\n")
    (tmp_path / "import_raises.py").write_text("raise RuntimeError('broken at import')\n")
    pkg = tmp_path / "cliapp_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    return tmp_path


def _command() -> list[str]:
    script = Path(sys.executable).with_name("procman")
    if script.exists():  # the console script: MODULE is found from the current directory
        return [str(script), "run"]
    return [sys.executable, "-m", "procman", "run"]


class Cli:
    """The CLI as a subprocess; stderr is read line by line in a thread."""

    def __init__(
        self,
        *args: str,
        cwd: Path,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROCMAN_")}
        full_env.pop("NOTIFY_SOCKET", None)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [*(command or _command()), *args],
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._stdout: list[str] = []
        self._out_reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._out_reader.start()

    @property
    def stdout(self) -> str:
        return "".join(self._stdout)

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._stdout.append(line)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """Read stderr until a line matches ``pattern``; fail after ``timeout``."""
        regex = re.compile(pattern)
        for line in self.lines:
            if match := regex.search(line):
                return match
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self._queue.put(None)
                break
            self.lines.append(line)
            if match := regex.search(line):
                return match
        self.kill()
        pytest.fail(f"no stderr line matched {pattern!r}; stderr:\n{self.stderr}")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = TIMEOUT) -> int:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the CLI did not exit within {timeout}s; stderr:\n{self.stderr}")
        self._reader.join(timeout)
        self._out_reader.join(timeout)
        while True:
            line = self._queue.get()
            if line is None:
                self._queue.put(None)
                break
            self.lines.append(line)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    @property
    def stderr(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def cli(app_dir: Path) -> Iterator[type[Cli]]:
    started: list[Cli] = []

    class Bound(Cli):
        def __init__(self, *args: str, env: dict[str, str] | None = None, **kw: object) -> None:
            super().__init__(*args, cwd=app_dir, env=env, **kw)  # type: ignore[arg-type]
            started.append(self)

    yield Bound
    for proc in started:
        proc.kill()


def run_to_end(cli: type[Cli], *args: str, env: dict[str, str] | None = None) -> Cli:
    proc = cli(*args, env=env)
    proc.finish()
    return proc


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_healthy(base: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if get(base + "/healthz", timeout=2.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail(f"{base}/healthz never answered 200")


# -- exit status 0 ---------------------------------------------------------------------------


def test_a_tree_that_ends_exits_0_though_the_cli_children_still_run(cli: type[Cli]) -> None:
    proc = run_to_end(cli, "cliapp:finite_tree", "--metrics-port", "0")
    assert proc.proc.returncode == 0, proc.stderr
    assert "every application child of app has ended" in proc.stderr
    assert "app ended cleanly" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_tree_ends_after_a_group_restart_of_the_receiver(cli: type[Cli]) -> None:
    proc = run_to_end(cli, "cliapp:group_restart_tree")
    assert proc.proc.returncode == 0, proc.stderr
    assert "app: run 2" in proc.stderr
    assert "process app/SignalReceiver restarting" in proc.stderr
    assert "every application child of app has ended" in proc.stderr


def test_a_tree_without_children_exits_0_at_once(cli: type[Cli]) -> None:
    proc = run_to_end(cli, "cliapp:empty_tree")
    assert proc.proc.returncode == 0, proc.stderr


# -- 128 + N -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "sig", "status"),
    [
        ("cliapp:manager", signal.SIGTERM, 143),
        ("cliapp:worker", signal.SIGINT, 130),
        ("cliapp:factory", signal.SIGQUIT, 131),
        ("cliapp:async_factory", signal.SIGTERM, 143),
    ],
)
def test_each_kind_of_target_runs_until_a_signal(
    cli: type[Cli], target: str, sig: signal.Signals, status: int
) -> None:
    proc = cli(target)
    proc.wait_for("app: running")
    proc.signal(sig)
    assert proc.finish() == status, proc.stderr
    assert f"stopped by {sig.name} (exit status {status})" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_sighup_reloads_the_tree(cli: type[Cli]) -> None:
    proc = cli("cliapp:manager")
    proc.wait_for("app: running")
    proc.signal(signal.SIGHUP)
    proc.wait_for("app: reloaded")
    proc.signal(signal.SIGTERM)
    assert proc.finish() == 143, proc.stderr


def test_a_signal_stops_a_tree_with_restarts_allowed(cli: type[Cli]) -> None:
    proc = cli("cliapp:with_intensity")
    proc.wait_for("app: running")
    proc.signal(signal.SIGTERM)
    assert proc.finish() == 143, proc.stderr
    assert "will restart" not in proc.stderr and "restarting" not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_metrics_and_signals_during_an_ordered_start(cli: type[Cli]) -> None:
    proc = cli("cliapp:ordered_never_ready", "--metrics-port", "0")
    base = proc.wait_for(r"listening on (http://127\.0\.0\.1:\d+)").group(1)
    proc.wait_for("app: running")
    wait_healthy(base)
    status, body = get(base + "/readyz")
    assert status == 503 and "db" in body
    proc.signal(signal.SIGHUP)  # before the SignalReceiver runs: the launcher reloads
    proc.wait_for("app: reloaded")
    proc.signal(signal.SIGTERM)
    assert proc.finish() == 143, proc.stderr
    assert "Traceback" not in proc.stderr


def test_signals_during_a_signal_driven_shutdown_are_ignored(cli: type[Cli]) -> None:
    proc = cli("cliapp:slow_tree")
    proc.wait_for("app: running")
    proc.signal(signal.SIGTERM)
    proc.wait_for("app: stopping slowly")
    proc.signal(signal.SIGINT)
    proc.wait_for("SIGINT received during the shutdown")
    proc.signal(signal.SIGTERM)
    proc.wait_for("SIGTERM received during the shutdown")
    proc.signal(signal.SIGUSR1)  # the slow child may finish now
    assert proc.finish() == 143, proc.stderr
    assert "app: stopped" in proc.stderr  # the child finished its graceful stop
    assert "Traceback" not in proc.stderr


def test_signals_during_a_failure_shutdown_are_ignored(cli: type[Cli]) -> None:
    proc = cli("cliapp:failing_slow")
    proc.wait_for("app: stopping slowly")
    proc.signal(signal.SIGINT)
    proc.wait_for("SIGINT received during the shutdown; ignored")
    proc.signal(signal.SIGTERM)
    proc.wait_for("SIGTERM received during the shutdown; ignored")
    proc.signal(signal.SIGUSR1)  # the slow child may finish now
    assert proc.finish() == 1, proc.stderr
    assert "app: stopped" in proc.stderr
    assert proc.stderr.count("Traceback") == 1


# -- 1 -------------------------------------------------------------------------------------------


def test_a_failure_exits_1_with_the_traceback_logged_once(cli: type[Cli]) -> None:
    proc = run_to_end(cli, "cliapp:failing_tree")
    assert proc.proc.returncode == 1, proc.stderr
    assert proc.stderr.count("Traceback") == 1
    # the traceback's last line, once
    assert proc.stderr.splitlines().count("RuntimeError: boom in child") == 1
    assert "app failed: RuntimeError: boom in child" in proc.stderr


@pytest.mark.parametrize(
    ("target", "text"),
    [
        ("cliapp:factory_raises", "ValueError: the factory broke"),
        ("import_raises:anything", "RuntimeError: broken at import"),
        # A ModuleNotFoundError raised inside the module, for another module: a failure.
        ("import_missing:anything", "No module named 'definitely_missing_module_xyz'"),
    ],
)
def test_exceptions_while_importing_or_calling_the_factory_exit_1(
    cli: type[Cli], target: str, text: str
) -> None:
    proc = run_to_end(cli, target)
    assert proc.proc.returncode == 1, proc.stderr
    assert proc.stderr.count("Traceback") == 1
    assert text in proc.stderr


# -- 2 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("cliapp", "expected MODULE:ATTR"),
        ("cliapp:", "expected MODULE:ATTR"),
        ("cli app:x", "expected MODULE:ATTR"),
        ("no_such_module_abc:app", "no module named 'no_such_module_abc'"),
        ("cliapp_pkg.missing:app", "no module named 'cliapp_pkg.missing'"),
        ("cliapp:nope", "module 'cliapp' has no attribute 'nope'"),
        ("cliapp:number", "int is not a ProcessManager, a Runnable"),
        ("cliapp:returns_int", "the factory returned int, not a ProcessManager or a Runnable"),
    ],
)
def test_an_unusable_target_exits_2_with_one_line(cli: type[Cli], target: str, reason: str) -> None:
    proc = run_to_end(cli, target)
    assert proc.proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert repr(target) in lines[0] and reason in lines[0]
    assert "Traceback" not in proc.stderr


# -- flags and environment variables ------------------------------------------------------------


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("PROCMAN_METRICS_PORT", "abc"),
        ("PROCMAN_METRICS_PORT", "70000"),
        ("PROCMAN_OTEL", "zipkin"),
        ("PROCMAN_LOG", "print"),
        ("PROCMAN_LOG_FORMAT", "xml"),
        ("PROCMAN_LOG_LEVEL", "LOUD"),
        ("PROCMAN_GRACE", "-1"),
        ("PROCMAN_GRACE", "nan"),
        ("PROCMAN_GC_FREEZE", "maybe"),
        ("PROCMAN_GC_FREEZE", "2"),
    ],
)
def test_a_bad_environment_value_is_a_usage_error_naming_the_variable(
    cli: type[Cli], var: str, value: str
) -> None:
    proc = run_to_end(cli, "cliapp:finite_tree", env={var: value})
    assert proc.proc.returncode == 2, proc.stderr
    assert f"${var}=" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_unusable_otel_protocol_is_a_usage_error(cli: type[Cli]) -> None:
    proc = run_to_end(
        cli, "cliapp:manager", env={"PROCMAN_OTEL": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    )
    assert proc.proc.returncode == 2, proc.stderr
    assert "OTEL_EXPORTER_OTLP_PROTOCOL='grpc' is not supported" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_flag_beats_its_environment_variable(cli: type[Cli]) -> None:
    proc = run_to_end(
        cli, "cliapp:finite_tree", "--log-format", "text", env={"PROCMAN_LOG_FORMAT": "json"}
    )
    assert proc.proc.returncode == 0, proc.stderr
    assert not proc.stderr.lstrip().startswith("{")
    assert "app ended cleanly" in proc.stderr


@pytest.mark.parametrize(
    ("args", "env", "frozen"),
    [
        ((), {}, False),
        (("--gc-freeze",), {}, True),
        ((), {"PROCMAN_GC_FREEZE": "1"}, True),
        ((), {"PROCMAN_GC_FREEZE": "On"}, True),
        ((), {"PROCMAN_GC_FREEZE": "no"}, False),
        (("--gc-freeze",), {"PROCMAN_GC_FREEZE": "false"}, True),  # the flag wins
    ],
)
def test_gc_freeze_from_the_flag_or_the_environment(
    cli: type[Cli], args: tuple[str, ...], env: dict[str, str], frozen: bool
) -> None:
    proc = run_to_end(
        cli, "cliapp:gc_tree", *args, env={**env, "APP_EXPECT_FREEZE": "1" if frozen else "0"}
    )
    assert proc.proc.returncode == 0, proc.stderr
    found = proc.wait_for(r"app: gc freeze count (\d+) \(before (\d+)\)")
    count, before = int(found.group(1)), int(found.group(2))
    logged = re.search(
        r"gc\.freeze\(\) after start-up: (\d+) objects moved to the permanent generation",
        proc.stderr,
    )
    if frozen:
        assert count > before, proc.stderr
        assert logged is not None and int(logged.group(1)) > 0, proc.stderr
    else:
        assert count == before, proc.stderr
        assert logged is None, proc.stderr


def test_log_level_from_the_environment(cli: type[Cli]) -> None:
    quiet = run_to_end(cli, "cliapp:finite_tree", env={"PROCMAN_LOG_LEVEL": "warning"})
    assert quiet.proc.returncode == 0
    assert "ended cleanly" not in quiet.stderr
    verbose = run_to_end(cli, "cliapp:finite_tree", env={"PROCMAN_LOG_LEVEL": "DEBUG"})
    assert "DEBUG" in verbose.stderr and "process app/job started" in verbose.stderr


def test_grace_overrides_the_root_grace_period(cli: type[Cli]) -> None:
    proc = cli("cliapp:slow_tree", env={"PROCMAN_GRACE": "0.3"})
    proc.wait_for("app: running")
    proc.signal(signal.SIGTERM)
    assert proc.finish() == 143, proc.stderr
    assert "did not stop within 0.3s" in proc.stderr
    assert "app: stopped" not in proc.stderr


def test_metrics_port_and_host_from_the_environment(cli: type[Cli]) -> None:
    proc = cli(
        "cliapp:manager", env={"PROCMAN_METRICS_PORT": "0", "PROCMAN_METRICS_HOST": "127.0.0.1"}
    )
    base = proc.wait_for(r"listening on (http://127\.0\.0\.1:\d+)").group(1)
    wait_healthy(base)
    status, body = get(base + "/metrics")
    assert status == 200
    assert 'procman_child_starts_total{child="worker",supervisor="app"} 1.0' in body
    proc.signal(signal.SIGTERM)
    assert proc.finish() == 143, proc.stderr


def test_an_attached_prometheus_metrics_is_reused(cli: type[Cli]) -> None:
    proc = cli("cliapp:with_metrics", "--metrics-port", "0")
    base = proc.wait_for(r"listening on (http://127\.0\.0\.1:\d+)").group(1)
    wait_healthy(base)
    _, body = get(base + "/metrics")
    assert "app_marker_total 1.0" in body  # served from the application's registry
    assert body.count("# TYPE procman_child_starts_total counter") == 1
    assert 'procman_child_starts_total{child="worker",supervisor="app"} 1.0' in body
    proc.signal(signal.SIGINT)
    assert proc.finish() == 130, proc.stderr


def test_an_attached_default_registry_metrics_is_not_registered_twice(cli: type[Cli]) -> None:
    proc = cli("cliapp:with_default_metrics", "--metrics-port", "0")
    base = proc.wait_for(r"listening on (http://127\.0\.0\.1:\d+)").group(1)
    wait_healthy(base)
    _, body = get(base + "/metrics")
    assert body.count("# TYPE procman_child_starts_total counter") == 1
    proc.signal(signal.SIGTERM)
    assert proc.finish() == 143, proc.stderr
    assert "Duplicated" not in proc.stderr


def test_a_metrics_port_in_use_fails_the_tree(cli: type[Cli]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_to_end(cli, "cliapp:manager", "--metrics-port", str(port))
    assert proc.proc.returncode == 1, proc.stderr
    assert f"could not listen on 127.0.0.1:{port}" in proc.stderr


def test_loguru_backend(cli: type[Cli]) -> None:
    proc = run_to_end(cli, "cliapp:failing_tree", "--log", "loguru")
    assert proc.proc.returncode == 1, proc.stderr
    assert "process app/nested/bad failed: RuntimeError: boom in child" in proc.stderr
    assert "process app/nested failed: RuntimeError: boom in child (traceback logged above)" in (
        proc.stderr
    )
    assert proc.stderr.count("Traceback") == 1


def test_otel_console_from_the_environment(cli: type[Cli]) -> None:
    proc = run_to_end(
        cli, "cliapp:finite_tree", env={"PROCMAN_OTEL": "console", "OTEL_SERVICE_NAME": "svc-x"}
    )
    assert proc.proc.returncode == 0, proc.stderr
    assert '"name": "procman.child.run"' in proc.stdout
    assert "svc-x" in proc.stdout


# -- systemd -------------------------------------------------------------------------------------


@pytest.mark.parametrize("abstract", [True, False])
def test_systemd_notify_ready_and_stopping(cli: type[Cli], tmp_path: Path, abstract: bool) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        if abstract:
            name = f"procman-test-{os.getpid()}-{time.monotonic_ns()}"
            sock.bind("\0" + name)
            address = "@" + name
        else:
            address = str(tmp_path / "notify.sock")
            sock.bind(address)
        sock.settimeout(TIMEOUT)
        proc = cli("cliapp:manager", env={"NOTIFY_SOCKET": address})
        assert sock.recv(4096) == b"READY=1"
        proc.wait_for("app: running")
        proc.signal(signal.SIGTERM)
        assert sock.recv(4096) == b"STOPPING=1"
        assert proc.finish() == 143, proc.stderr
