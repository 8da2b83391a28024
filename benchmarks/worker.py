"""Runs one measurement in this (fresh) interpreter and prints it as JSON.

``python -m benchmarks.worker WORKLOAD CONFIG PARAM [--repeats R]``; PARAM is
N for workloads A, C, D and E and the duration in seconds for B; R is the
number of reloads (C) or restart storms (D) in the run. The last line of
stdout is ``BENCH-RESULT {json}`` with ``status`` ok, unavailable or error,
``metrics`` (numbers: phase seconds, memory) and ``info``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import traceback
from collections.abc import Awaitable
from typing import Any

from benchmarks.backends import Unavailable
from benchmarks.configs import BY_NAME
from benchmarks.measure import GcTimer, PhaseClock, current_rss_kib, peak_rss_kib

MARKER = "BENCH-RESULT "


def _run(coro_fn: Any, loop: str) -> Any:
    if loop == "eager":
        factory = getattr(asyncio, "eager_task_factory", None)
        if factory is None:
            raise Unavailable(
                f"eager_task_factory needs Python 3.12+, this is {sys.version.split()[0]}"
            )
        with asyncio.Runner() as runner:
            runner.get_loop().set_task_factory(factory)
            return runner.run(coro_fn())
    if loop == "uvloop":
        try:
            import uvloop
        except ImportError as exc:
            raise Unavailable(f"uvloop: {exc}") from exc
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro_fn())
    with asyncio.Runner() as runner:
        return runner.run(coro_fn())


def measure(workload: str, config_name: str, param: float, repeats: int) -> dict[str, Any]:
    cfg = BY_NAME[config_name]
    if workload not in cfg.workloads:
        raise SystemExit(f"configuration {config_name} does not run workload {workload}")
    mem: dict[str, int] = {}

    def memory_baseline() -> None:
        gc.collect()
        mem["hwm_before"] = peak_rss_kib()
        mem["rss_before"] = current_rss_kib()
        gc_timer.install()

    clock = PhaseClock(before_first_phase=memory_baseline)
    gc_timer = GcTimer(clock)

    async def body() -> dict[str, Any]:
        coro: Awaitable[dict[str, Any]]
        if workload == "A":
            from benchmarks.workload_a import RUNNERS as A

            coro = A[cfg.runner_key](int(param), clock)
        elif workload == "B":
            from benchmarks.workload_b import RUNNERS as B

            coro = B[cfg.runner_key](float(param), clock)
        elif workload == "C":
            from benchmarks.workload_c import RUNNERS as C

            coro = C[cfg.runner_key](int(param), repeats, clock)
        elif workload == "D":
            from benchmarks.workload_d import RUNNERS as D

            coro = D[cfg.runner_key](int(param), repeats, clock)
        else:
            from benchmarks.workload_e import RUNNERS as E

            coro = E[cfg.runner_key](int(param), clock)
        return await coro

    out: dict[str, Any] = {"workload": workload, "config": config_name, "param": param}
    try:
        try:
            extra = _run(body, cfg.loop)
        finally:
            gc_timer.remove()
    except (Unavailable, ImportError) as exc:
        out.update(status="unavailable", reason=f"{type(exc).__name__}: {exc}")
        return out
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        out.update(
            status="error",
            reason=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        )
        return out
    metrics: dict[str, float] = {}
    info: dict[str, Any] = {}
    for key, value in extra.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            metrics[key] = value
        elif value is not None:
            info[key] = value
    for phase, seconds in clock.phases.items():
        metrics[phase] = seconds
    if workload == "A":
        metrics["total"] = metrics["start"] + metrics["stop"]
        n = int(param)
        metrics["us_per_child"] = metrics["total"] / n * 1e6
        if mem:
            grown = peak_rss_kib() - mem["hwm_before"]
            metrics["rss_per_child"] = grown * 1024 / n
            if "rss_running" in clock.marks:
                live = clock.marks["rss_running"] - mem["rss_before"]
                metrics["live_per_child"] = live * 1024 / n
    metrics["peak_rss_mib"] = peak_rss_kib() / 1024
    # cyclic GC inside the timed phases
    metrics["gc_s"] = gc_timer.seconds
    metrics["gc_full_s"] = gc_timer.full_seconds
    metrics["gc_collections"] = gc_timer.collections
    metrics["gc_full_collections"] = gc_timer.full_collections
    out.update(status="ok", metrics=metrics, info=info)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("workload", choices=["A", "B", "C", "D", "E"])
    parser.add_argument("config", choices=sorted(BY_NAME))
    parser.add_argument("param", type=float)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    result = measure(args.workload, args.config, args.param, args.repeats)
    sys.stdout.write(MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
