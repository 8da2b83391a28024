"""Runs the sibling benchmark scripts (``otel_overhead``, ``scrape_cost``) when present.

They are owned by other work items; the harness only runs each as
``python -m benchmarks.<name>`` with a time limit and keeps its output. The
figures of ``scrape_cost`` (its ``SCRAPE-RESULT`` line) are kept as
``result``, which :func:`benchmarks.report.targets` checks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NAMES = ("otel_overhead", "scrape_cost")
TIMEOUT = 180.0


def run_extras(progress: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in NAMES:
        if not (HERE / f"{name}.py").exists():
            out[name] = {"status": "absent"}
            continue
        progress(f"extra: {name}")
        try:
            proc = subprocess.run(
                [sys.executable, "-m", f"benchmarks.{name}"],
                cwd=HERE.parent,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            out[name] = {"status": "timeout", "limit_s": TIMEOUT}
            continue
        result = parse_marker(proc.stdout, RESULT_MARKERS.get(name, ""))
        shown = [ln for ln in proc.stdout.splitlines() if not _is_marker(ln)]
        out[name] = {
            "status": "ok" if proc.returncode == 0 else f"exit {proc.returncode}",
            "stdout": "\n".join(shown)[-8000:],
            "stderr": proc.stderr[-2000:] if proc.returncode else "",
        }
        if result is not None:
            out[name]["result"] = result
    return out


# The line prefix under which an extra prints its figures as JSON.
RESULT_MARKERS = {"scrape_cost": "SCRAPE-RESULT "}


def _is_marker(line: str) -> bool:
    return any(m and line.startswith(m) for m in RESULT_MARKERS.values())


def parse_marker(stdout: str, marker: str) -> dict[str, Any] | None:
    """The JSON document of the last line of ``stdout`` starting with ``marker``."""
    if not marker:
        return None
    for line in reversed(stdout.splitlines()):
        if line.startswith(marker):
            try:
                found = json.loads(line[len(marker) :])
            except ValueError:
                return None
            return found if isinstance(found, dict) else None
    return None


def text(extras: dict[str, Any]) -> str:
    lines = []
    for name, res in extras.items():
        if res.get("status") == "absent":
            continue
        lines.append(f"\n--- benchmarks.{name}: {res['status']}")
        if res.get("stdout"):
            lines.append(res["stdout"].rstrip())
    return "\n".join(lines)
