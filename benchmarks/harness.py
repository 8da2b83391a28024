"""Plans the runs, executes each in a fresh interpreter and aggregates medians.

Guarantees:

* one subprocess per (workload, configuration, parameter, round), so peak
  RSS is that configuration's alone;
* within a round the configurations run back to back for one parameter,
  in an order rotated every round, so slow drift of the machine spreads
  over all configurations;
* a configuration that reports "unavailable" once is not run again; one
  whose estimated run time (extrapolated from its two largest measured N
  with their observed growth exponent, at least linear) exceeds
  ``slow_limit`` seconds, or that timed out, is skipped for that N and
  above; one that took longer than ``slow_limit`` is kept but not
  repeated in later rounds. The report says which.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.configs import BY_NAME, CONFIGS
from benchmarks.worker import MARKER

ROOT = Path(__file__).resolve().parent.parent

# The metric each workload's ratios are computed on (lower is better).
RATIO_METRIC = {
    "A": "total",
    "B": "us_per_restart",
    "C": "reload",
    "D": "storm",
    "E": "ordered",
}

# What each workload measures (the report's headings and --workloads help).
WORKLOADS = {
    "A": "start N idle children, stop them all",
    "B": "crash-looping child restarted with zero backoff",
    "C": "reload fan-out to N children",
    "D": "restart storm: ONE_FOR_ALL over N children, one fails",
    "E": "start N wait_ready children, ordered vs concurrent",
}


@dataclass
class Settings:
    sizes: tuple[int, ...] = (1_000, 10_000, 50_000, 100_000)
    rounds: int = 3
    restart_seconds: float = 2.0
    reload_n: int = 10_000
    reload_repeats: int = 5
    storm_n: int = 1_000
    storm_repeats: int = 5
    ready_n: int = 10_000
    workloads: str = "ABCDE"
    configs: tuple[str, ...] = tuple(c.name for c in CONFIGS)
    slow_limit: float = 60.0
    timeout: float = 120.0

    def params(self, workload: str) -> tuple[float, ...]:
        if workload == "A":
            return tuple(float(n) for n in self.sizes)
        if workload == "B":
            return (self.restart_seconds,)
        if workload == "D":
            return (float(self.storm_n),)
        if workload == "E":
            return (float(self.ready_n),)
        return (float(self.reload_n),)


@dataclass
class Cell:
    """All rounds of one (workload, configuration, parameter)."""

    workload: str
    config: str
    param: float
    runs: list[dict[str, Any]] = field(default_factory=list)
    status: str = "pending"  # ok, unavailable, skipped, error
    note: str = ""

    def median(self) -> dict[str, float]:
        ok = [r["metrics"] for r in self.runs if r.get("status") == "ok"]
        if not ok:
            return {}
        keys = set().union(*ok)
        return {k: statistics.median(m[k] for m in ok if k in m) for k in sorted(keys)}


def run_worker(
    workload: str, config: str, param: float, settings: Settings, root: Path = ROOT
) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; never raises for a failed run.

    ``root`` is the source tree whose ``benchmarks`` and ``procman`` it imports
    (another checkout for a before/after comparison, see :mod:`benchmarks.compare`).
    """
    cmd = [sys.executable, "-m", "benchmarks.worker", workload, config, repr(param)]
    if workload == "C":
        cmd += ["--repeats", str(settings.reload_repeats)]
    elif workload == "D":
        cmd += ["--repeats", str(settings.storm_repeats)]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            cmd,
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=settings.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "reason": f"no result within {settings.timeout:.0f}s"}
    wall = time.monotonic() - t0
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            result: dict[str, Any] = json.loads(line[len(MARKER) :])
            result["wall"] = wall
            return result
    tail = (proc.stderr or proc.stdout)[-2000:]
    return {"status": "error", "reason": f"worker exited {proc.returncode}: {tail}", "wall": wall}


Progress = Callable[[str], None]


def run_all(settings: Settings, progress: Progress) -> dict[tuple[str, str, float], Cell]:
    """Every planned cell, measured ``settings.rounds`` times, configurations alternating."""
    cells: dict[tuple[str, str, float], Cell] = {}
    unavailable: dict[str, str] = {}
    too_slow: dict[tuple[str, str], tuple[float, str]] = {}  # (workload, config) -> (N, why)
    configs = [BY_NAME[name] for name in settings.configs]
    for rnd in range(settings.rounds):
        for workload in settings.workloads:
            members = [c.name for c in configs if workload in c.workloads]
            if not members:
                continue
            shift = rnd % len(members)
            order = members[shift:] + members[:shift]
            for param in settings.params(workload):
                for name in order:
                    cell = cells.setdefault((workload, name, param), Cell(workload, name, param))
                    if name in unavailable:
                        cell.status, cell.note = "unavailable", unavailable[name]
                        continue
                    skip = _skip_reason(cells, too_slow, workload, name, param, settings)
                    if skip == "keep":
                        continue
                    if skip:
                        cell.status, cell.note = "skipped", skip
                        continue
                    label = f"round {rnd + 1}/{settings.rounds} {workload} {name} {param:g}"
                    result = run_worker(workload, name, param, settings)
                    status = result.get("status")
                    progress(f"{label}: {status} ({result.get('wall', 0.0):.1f}s)")
                    if status == "unavailable":
                        unavailable[name] = str(result.get("reason", ""))
                        cell.status, cell.note = "unavailable", unavailable[name]
                        continue
                    if status == "timeout":
                        too_slow[(workload, name)] = (param, str(result["reason"]))
                        cell.status, cell.note = "skipped", str(result["reason"])
                        continue
                    cell.runs.append(result)
                    if status == "ok":
                        cell.status = "ok"
                        total = result["metrics"].get("total", 0.0)
                        if total > settings.slow_limit:
                            why = f"took {total:.0f}s > {settings.slow_limit:.0f}s"
                            too_slow[(workload, name)] = (param, why)
                            cell.note = f"measured once: {why}"
                    elif cell.status != "ok":
                        cell.status = "error"
                        cell.note = str(result.get("reason", ""))[:500]
    return cells


def _skip_reason(
    cells: dict[tuple[str, str, float], Cell],
    too_slow: dict[tuple[str, str], tuple[float, str]],
    workload: str,
    name: str,
    param: float,
    settings: Settings,
) -> str:
    slow = too_slow.get((workload, name))
    if slow is not None and param >= slow[0]:
        done = cells.get((workload, name, param))
        if done is not None and done.status == "ok":
            return "keep"  # measured once already; do not repeat it
        return f"N >= {slow[0]:,.0f}: {slow[1]}"
    if workload != "A":
        return ""
    measured: list[tuple[float, float]] = []
    for (w, n, p), c in cells.items():
        total = c.median().get("total") if c.status == "ok" else None
        if w == workload and n == name and p < param and total is not None:
            measured.append((p, total))
    if not measured:
        return ""
    measured.sort()
    p, t = measured[-1]
    exponent = 1.0
    if len(measured) >= 2:
        p0, t0 = measured[-2]
        if t0 > 0 and t > t0:
            exponent = max(1.0, math.log(t / t0) / math.log(p / p0))
    estimate = t * (param / p) ** exponent
    if estimate > settings.slow_limit:
        too_slow[(workload, name)] = (
            param,
            f"estimated {estimate:.0f}s > {settings.slow_limit:.0f}s "
            f"(from {t:.1f}s at N={p:,.0f}, growth N^{exponent:.2f})",
        )
        return too_slow[(workload, name)][1]
    return ""
