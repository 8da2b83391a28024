"""``python -m benchmarks [--quick] [--json PATH]``: run the suite, print the table."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks import extras, report
from benchmarks.configs import BY_NAME
from benchmarks.harness import WORKLOADS, Settings, run_all

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"


def settings_from(args: argparse.Namespace) -> Settings:
    if args.quick:
        s = Settings(
            sizes=(1_000, 10_000), rounds=1, restart_seconds=0.5, reload_n=10_000, reload_repeats=3
        )
    else:
        s = Settings()
    if args.sizes:
        s.sizes = tuple(int(x) for x in args.sizes.split(","))
    if args.rounds:
        s.rounds = args.rounds
    if args.quick:
        # D and E are opt-in in quick mode (--workloads DE): keeps the quick run short
        s.workloads = "ABC"
        s.storm_repeats = 3
    if args.workloads:
        s.workloads = args.workloads.upper()
        unknown_w = sorted(set(s.workloads) - set(WORKLOADS))
        if unknown_w:
            raise SystemExit(
                f"unknown workload(s): {', '.join(unknown_w)}; known: {''.join(WORKLOADS)}"
            )
    if args.configs:
        names = tuple(x.strip() for x in args.configs.split(",") if x.strip())
        unknown = [n for n in names if n not in BY_NAME]
        if unknown:
            raise SystemExit(
                f"unknown configuration(s): {', '.join(unknown)}; known: {', '.join(BY_NAME)}"
            )
        s.configs = names
    return s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="procman side-by-side benchmarks (each configuration in its own process)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="A, B, C only; N=1k,10k, 1 round (< 1 minute)"
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"default {DEFAULT_JSON}")
    parser.add_argument("--sizes", help="comma-separated N for workload A (e.g. 1000,10000)")
    parser.add_argument("--rounds", type=int, help="rounds (default 3, quick 1)")
    parser.add_argument(
        "--workloads",
        help="subset of ABCDE (default all; --quick: ABC): "
        + "; ".join(f"{k} = {v}" for k, v in WORKLOADS.items()),
    )
    parser.add_argument("--configs", help="comma-separated configuration names (default all)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument(
        "--no-extras",
        action="store_true",
        help="do not run benchmarks/otel_overhead.py and scrape_cost.py (full mode only)",
    )
    args = parser.parse_args(argv)
    settings = settings_from(args)

    def progress(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    t0 = time.monotonic()
    before = report.machine()
    cells = run_all(settings, progress)
    doc = report.build(cells, settings, time.monotonic() - t0, before)
    if not args.quick and not args.no_extras:
        doc["extras"] = extras.run_extras(progress)
        doc["targets"] = report.targets(doc)  # the scrape target needs scrape_cost's figures
    doc["elapsed_s"] = time.monotonic() - t0
    print(report.text(doc))
    if doc.get("extras"):
        print(extras.text(doc["extras"]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
