"""Runs the sibling benchmark scripts (``otel_overhead``, ``scrape_cost``) when present.

They are owned by other work items; the harness only runs each as
``python -m benchmarks.<name>`` with a time limit and keeps its output.
"""

from __future__ import annotations

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
        out[name] = {
            "status": "ok" if proc.returncode == 0 else f"exit {proc.returncode}",
            "stdout": proc.stdout[-8000:],
            "stderr": proc.stderr[-2000:] if proc.returncode else "",
        }
    return out


def text(extras: dict[str, Any]) -> str:
    lines = []
    for name, res in extras.items():
        if res.get("status") == "absent":
            continue
        lines.append(f"\n--- benchmarks.{name}: {res['status']}")
        if res.get("stdout"):
            lines.append(res["stdout"].rstrip())
    return "\n".join(lines)
