"""Every example runs to completion on its own; signals reach a real subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("simple.py", "all workers stopped"),
        ("dynamic_add.py", "added dynamic-1"),
        ("restart_supervisor.py", "restarted"),
        ("runtime_context.py", "counter: custom message"),
        ("nested.py", "root/consumers/consumer-2"),
        ("signals.py", "stopped"),
        ("web_server.py", "drained and closed"),
        ("external_program.py", "worker: graceful stop"),
    ],
)
def test_example_runs_to_completion(name: str, expected: str) -> None:
    extra = ("--port", "0") if name == "web_server.py" else ()
    proc = run_example(name, "--duration", "1.5", *extra)
    assert proc.returncode == 0, proc.stderr
    assert expected in proc.stdout + proc.stderr


def test_restart_example_actually_restarts() -> None:
    proc = run_example("restart_supervisor.py", "--duration", "1.5")
    assert "will restart in" in proc.stderr
    restarted = [line for line in proc.stdout.splitlines() if line.startswith("restarted ")]
    assert restarted and int(restarted[0].split()[1]) >= 1


class Child:
    """A running example subprocess whose stdout we read line by line."""

    def __init__(self, name: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / name), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []

    def wait_for(self, prefix: str, timeout: float = 15) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting with {prefix!r}; got {self.lines}")

    def finish(self, timeout: float = 15) -> tuple[int, str]:
        out, _err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, "\n".join(self.lines) + out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT])
def test_terminating_signal_shuts_down_gracefully(sig: signal.Signals) -> None:
    child = Child("signals.py")
    try:
        child.wait_for("ready")
        os.kill(child.proc.pid, sig)
        code, out = child.finish()
        assert code == 128 + sig
        assert "service: graceful stop" in out
        assert f"stopped by {sig.name}" in out
    finally:
        child.kill()


def test_sighup_reloads_the_tree_and_signal_bursts_are_survived() -> None:
    child = Child("signals.py")
    try:
        child.wait_for("ready")
        os.kill(child.proc.pid, signal.SIGHUP)
        child.wait_for("reloaded 1")
        for _ in range(10):  # a burst: coalesced reloads, then one graceful shutdown
            os.kill(child.proc.pid, signal.SIGHUP)
        for _ in range(10):
            os.kill(child.proc.pid, signal.SIGTERM)
        code, out = child.finish()
        assert code == 128 + signal.SIGTERM
        assert out.count("service: graceful stop") == 1
    finally:
        child.kill()


def test_web_server_serves_reloads_and_drains_on_sigterm() -> None:
    child = Child("web_server.py", "--port", "0")
    try:
        line = child.wait_for("listening on")
        url = line.split()[2]
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert b"generation 0" in resp.read()
        os.kill(child.proc.pid, signal.SIGHUP)
        child.wait_for("reloaded: generation 1")
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert b"generation 1" in resp.read()
        os.kill(child.proc.pid, signal.SIGTERM)
        code, out = child.finish()
        assert code == 128 + signal.SIGTERM
        assert "http: drained and closed" in out
    finally:
        child.kill()


def test_external_program_reloads_the_worker_and_stops_it_on_sigterm() -> None:
    child = Child("external_program.py")
    try:
        spawned = child.wait_for("procman.subprocess INFO procman: worker started as pid")
        worker_pid = int(spawned.split()[-1])
        child.wait_for("procman.subprocess.worker INFO worker: listening")
        os.kill(child.proc.pid, signal.SIGHUP)
        child.wait_for("procman.subprocess.worker INFO worker: reloaded its configuration")
        os.kill(child.proc.pid, signal.SIGTERM)
        code, out = child.finish()
        assert code == 128 + signal.SIGTERM
        assert "worker: graceful stop" in out
        assert "stopped by SIGTERM" in out
        with pytest.raises(ProcessLookupError):  # stopped and reaped by the example
            os.kill(worker_pid, 0)
    finally:
        child.kill()
