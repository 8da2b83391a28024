"""Before/after comparison of two source trees in the same run.

``python -m benchmarks.compare --against PATH [--workloads A] [--configs ...]
[--sizes ...] [--rounds R] [--json PATH]``

Runs the same workload worker (``python -m benchmarks.worker``) once per
round in this tree and in ``PATH`` (another checkout, for example a
``git worktree`` of the commit before a change), alternating which tree goes
first, so both see the same machine load. Each tree imports its own
``procman`` and ``benchmarks`` (the worker's command line must be the same
in both). Reports per cell the median of each tree and the median of the
per-round after/before ratios (paired, so slow drift of a shared machine
cancels out). ``baseline`` runs the same code in both trees: its ratio
shows the noise of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness import RATIO_METRIC, ROOT, Settings, run_worker
from benchmarks.report import machine

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "compare.json"


def _describe(root: Path) -> dict[str, str]:
    """The commit and the procman module a worker started in ``root`` imports."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-c", "import procman; print(procman.__file__)"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    commit = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {"root": str(root), "procman": out, "commit": commit or "unknown"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare")
    parser.add_argument("--against", type=Path, required=True, help="the other source tree")
    parser.add_argument("--workloads", default="A", help="letters (default A)")
    parser.add_argument("--configs", default="baseline,procman,procman-logging")
    parser.add_argument("--sizes", default="1000,10000,50000", help="N for workload A")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    settings = Settings(
        sizes=tuple(int(x) for x in args.sizes.split(",")),
        workloads=args.workloads.upper(),
    )
    before_root = args.against.resolve()
    trees = {"before": _describe(before_root), "after": _describe(ROOT)}
    if trees["before"]["procman"] == trees["after"]["procman"]:
        raise SystemExit(f"both trees import the same procman: {trees['after']['procman']}")
    roots = {"before": before_root, "after": ROOT}
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    load_before = machine()["load_average"]
    runs: dict[tuple[str, str, float], dict[str, list[dict[str, float]]]] = {}
    for rnd in range(args.rounds):
        order = ("before", "after") if rnd % 2 == 0 else ("after", "before")
        for workload in settings.workloads:
            for param in settings.params(workload):
                for config in configs:
                    cell = runs.setdefault((workload, config, param), {"before": [], "after": []})
                    for tree in order:
                        result = run_worker(workload, config, param, settings, roots[tree])
                        status = result.get("status")
                        print(
                            f"round {rnd + 1}/{args.rounds} {workload} {config} {param:g} "
                            f"{tree}: {status} ({result.get('wall', 0.0):.1f}s)",
                            file=sys.stderr,
                            flush=True,
                        )
                        if status == "ok":
                            cell[tree].append(result["metrics"])
                        else:
                            cell[tree].append({})
    rows = []
    for (workload, config, param), cell in runs.items():
        metric = RATIO_METRIC.get(workload, "total")
        b = [m[metric] for m in cell["before"] if metric in m]
        a = [m[metric] for m in cell["after"] if metric in m]
        paired = [
            x[metric] / y[metric]
            for x, y in zip(cell["after"], cell["before"], strict=True)
            if metric in x and metric in y and y[metric]
        ]
        rows.append(
            {
                "workload": workload,
                "config": config,
                "param": param,
                "metric": metric,
                "before": b,
                "after": a,
                "before_median": statistics.median(b) if b else None,
                "after_median": statistics.median(a) if a else None,
                "ratio_median": statistics.median(paired) if paired else None,
                "ratios": paired,
            }
        )
    m = machine()
    m["load_average_before"] = load_before
    doc = {"machine": m, "trees": trees, "rounds": args.rounds, "rows": rows}
    print(
        f"before: {trees['before']['commit']} ({trees['before']['procman']})\n"
        f"after:  {trees['after']['commit']} ({trees['after']['procman']})\n"
        f"{m['nproc']} CPU ({m['cpu']}), Python {m['python']}, load average before/after "
        f"{load_before}/{m['load_average']}; {args.rounds} rounds, trees alternating"
    )
    header = (
        f"{'wl':<3}{'configuration':<18}{'N':>8} {'before ms':>10} {'after ms':>10} "
        f"{'after/before':>13}  per-round ratios"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        bm, am, rm = r["before_median"], r["after_median"], r["ratio_median"]
        print(
            f"{r['workload']:<3}{r['config']:<18}{r['param']:>8,.0f} "
            f"{'-' if bm is None else f'{bm * 1e3:.1f}':>10} "
            f"{'-' if am is None else f'{am * 1e3:.1f}':>10} "
            f"{'-' if rm is None else f'{rm:.3f}':>13}  "
            + " ".join(f"{x:.2f}" for x in r["ratios"])
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"JSON written to {args.json} ({time.strftime('%H:%M:%S')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
