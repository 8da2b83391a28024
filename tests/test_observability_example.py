"""examples/observability.py runs to completion: spans on stdout, correlated log lines."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "observability.py"


def test_observability_example_prints_spans_and_correlated_logs() -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--duration", "1.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("observability example stopped")
    # ConsoleSpanExporter prints one JSON object per span.
    decoder = json.JSONDecoder()
    text, spans, pos = proc.stdout, [], 0
    while (start := text.find("{", pos)) != -1:
        span, pos = decoder.raw_decode(text, start)
        spans.append(span)
    names = [s["name"] for s in spans]
    assert "procman.child.run" in names and "procman.child.restart" in names
    assert "procman.shutdown" in names
    run_ids = {s["context"]["trace_id"][2:] for s in spans if s["name"] == "procman.child.run"}
    polls = [s for s in spans if s["name"] == "poll"]
    assert polls and all(p["context"]["trace_id"][2:] in run_ids for p in polls)
    # Each log line of the child carries its run's trace id.
    logged = re.findall(r"trace=([0-9a-f]{32}) poll \d", proc.stderr)
    assert logged and set(logged) <= run_ids
    failed = re.findall(
        r"ERROR procman trace=([0-9a-f]{32}) process app/poller failed", proc.stderr
    )
    assert failed and set(failed) <= run_ids
