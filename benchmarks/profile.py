"""Profile one configuration of workload A in this process.

``python -m benchmarks.profile [--n 100000] [--config procman] [--tool pyinstrument|cprofile]
[--no-gc]``

cProfile prints the functions with the largest own time (``tottime``) and
cumulative time; pyinstrument prints its call tree. Profilers slow Python
code down unevenly, so use the shares to find hot spots, not as timings.
Cyclic-GC pauses are charged to whatever function allocated when they
struck: ``--no-gc`` disables the collector to see the Python work alone
(the GC's own share is in the harness's ``gc_s`` metric). The harness's
"all children running" check (a snapshot) shows up in the profile too.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import pstats
import sys

from benchmarks.configs import BY_NAME
from benchmarks.measure import PhaseClock
from benchmarks.workload_a import RUNNERS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--config", default="procman", choices=sorted(BY_NAME))
    parser.add_argument("--tool", default="cprofile", choices=["cprofile", "pyinstrument"])
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime", help="cProfile sort key")
    parser.add_argument("--no-gc", action="store_true", help="disable the cyclic GC")
    args = parser.parse_args(argv)
    if args.no_gc:
        gc.disable()
    runner = RUNNERS[BY_NAME[args.config].runner_key]
    clock = PhaseClock()

    async def body() -> None:
        await runner(args.n, clock)

    if args.tool == "cprofile":
        prof = cProfile.Profile()
        prof.enable()
        asyncio.run(body())
        prof.disable()
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats(args.sort).print_stats(args.top)
        print(out.getvalue())
    else:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005, async_mode="disabled")
        profiler.start()
        asyncio.run(body())
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False, show_all=False))
    phases = ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in clock.phases.items())
    print(f"{args.config} N={args.n:,} (under the profiler): {phases}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
