"""examples/policies.py runs on its own and shows each policy at work, in order."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "policies.py"
LINE = re.compile(r"^\[\s*\d+\.\d+s\] (?P<who>[\w-]+): (?P<what>.*)$")


@pytest.fixture(scope="module")
def run() -> tuple[int, list[str], str]:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = []
    for raw in proc.stdout.splitlines():
        m = LINE.match(raw)
        assert m, f"unexpected output line: {raw!r}"
        lines.append(f"{m['who']}: {m['what']}")
    return proc.returncode, lines, proc.stderr


def index(lines: list[str], text: str, start: int = 0) -> int:
    """The index of the first line from ``start`` that begins with ``text``."""
    for i in range(start, len(lines)):
        if lines[i].startswith(text):
            return i
    raise AssertionError(f"no line starting with {text!r} after line {start}: {lines}")


def test_it_ends_on_its_own_with_status_zero(run: tuple[int, list[str], str]) -> None:
    code, lines, stderr = run
    assert code == 0, stderr
    assert lines[-1] == "app: tree ended: process_start() returned None"
    assert "Traceback" not in stderr


def test_the_database_pool_is_ready_before_anything_after_it_starts(
    run: tuple[int, list[str], str],
) -> None:
    _, lines, _ = run
    ready = index(lines, "event: ready app/db-pool")
    assert index(lines, "db-pool: connecting") < ready
    for later in (
        "producer: started",
        "consumer: started",
        "metrics-sidecar: started",
        "batch-job: started",
    ):
        assert index(lines, later) > ready, later
    assert "consumer: started (run 1, database connected: True)" in lines
    # the ordered start: the pipeline is ready before the sidecar and the job start
    pipeline_ready = index(lines, "event: ready app/pipeline")
    assert ready < pipeline_ready < index(lines, "metrics-sidecar: started")
    assert index(lines, "metrics-sidecar: started") < index(lines, "batch-job: started")


def test_the_one_for_all_group_restarts_together_once(run: tuple[int, list[str], str]) -> None:
    _, lines, _ = run
    failed = index(lines, "consumer: lost the connection")
    assert index(lines, "event: failed app/pipeline/consumer: database connection reset") > failed
    requested = index(lines, "event: restart requested in app/pipeline")
    assert lines[requested] == (
        "event: restart requested in app/pipeline: strategy one_for_all, trigger consumer, "
        "restarting [producer, consumer]"
    )
    # the sibling is stopped gracefully, then both start again, producer first
    producer_stopped = index(lines, "producer: stopped", requested)
    completed = index(lines, "event: restart completed in app/pipeline (one_for_all, consumer)")
    assert producer_stopped < completed
    assert index(lines, "producer: started", completed) < index(
        lines, "consumer: started (run 2", completed
    )
    assert sum(line.startswith("event: restart requested") for line in lines) == 1
    assert sum(line.startswith("producer: started") for line in lines) == 2
    assert sum(line.startswith("consumer: started") for line in lines) == 2


def test_the_significant_job_ends_the_tree_in_reverse_order(
    run: tuple[int, list[str], str],
) -> None:
    _, lines, _ = run
    done = index(lines, "batch-job: done: 6 items")
    assert done > index(lines, "consumer: started (run 2")
    shutdown = index(lines, "event: shutdown of app (significant)")
    assert shutdown > done
    sidecar = index(lines, "metrics-sidecar: flushed and stopped", shutdown)
    pipeline = index(lines, "event: shutdown of app/pipeline (requested)", shutdown)
    consumer = index(lines, "consumer: stopped", shutdown)
    producer = index(lines, "producer: stopped", shutdown)
    db = index(lines, "db-pool: closed", shutdown)
    assert sidecar < pipeline < min(consumer, producer) and max(consumer, producer) < db
    assert "batch-job: stopped early" not in lines
