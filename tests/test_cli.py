"""The procman command line: the demo runs a tree, stops cleanly on its own (exit 0) or on
Ctrl-C / SIGTERM (exit 128 + N)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from procman import __version__
from procman.cli import main


def demo(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "procman", "demo", "--metrics-port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_demo_stops_on_its_own_after_duration() -> None:
    proc = demo("--duration", "2")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "demo: stopped cleanly" in out
    assert "supervisor demo shut down" in out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_demo_stops_gracefully_on_ctrl_c_and_sigterm(sig: signal.Signals) -> None:
    proc = demo()
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        seen = []
        while time.monotonic() < deadline:  # bounded: readline returns at EOF too
            line = proc.stdout.readline()
            seen.append(line)
            if not line or line.startswith("demo: running"):
                break
        os.kill(proc.pid, sig)
        out, _ = proc.communicate(timeout=30)
        # Issue 9 item 12: the exit status is 128 + the signal (130 for SIGINT, 143 for
        # SIGTERM), so `procman demo && next` stops after Ctrl-C.
        assert proc.returncode == 128 + sig, "".join(seen) + out
        assert f"demo: stopped by {sig.name} (exit status {128 + sig})" in out
        assert "supervisor demo shut down" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_demo_with_loguru_shows_the_events() -> None:
    proc = demo("--duration", "1", "--log", "loguru")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "supervisor demo shut down" in out  # procman's loguru records are enabled


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_unknown_backend_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", "--otel", "zipkin"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
