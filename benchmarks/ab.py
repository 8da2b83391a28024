"""Before/after of workload A on a busy machine: CPU time, many repeats, two trees.

``python -m benchmarks.ab --against PATH [--configs procman,procman-logging]
[--sizes 10000] [--repeats 15] [--processes 4]``

Wall-clock phases on a shared machine mostly measure the other tenants.
This runs workload A's runners (``benchmarks.workload_a.RUNNERS``)
``repeats`` times in one interpreter (``gc.collect()`` between runs) and
records the CPU time of this process (:func:`time.process_time`) in the
timed phases (start + stop), which does not count the time the process
waits for a CPU, and the wall clock of the whole run. ``processes`` interpreters per tree alternate
between this tree and ``PATH``, each importing its own ``procman``.
Reported per cell: the minimum and median CPU time (ms) of all runs in each
tree and their after/before ratios.

Internally: ``python benchmarks/ab.py --child ROOT CONFIG N REPEATS`` is one
interpreter; it prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent


def _child(root: str, config: str, n: int, repeats: int) -> None:
    sys.path.insert(0, root)
    import procman
    from benchmarks import measure
    from benchmarks.backends import OBSERVERS  # noqa: F401  (imported before timing)
    from benchmarks.workload_a import RUNNERS

    # the phase clock reads CPU time: the timed phases exclude waiting for a CPU
    measure.time = types.SimpleNamespace(perf_counter=time.process_time)  # type: ignore[assignment]
    runner = RUNNERS[config]
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(repeats):
        gc.collect()
        clock = measure.PhaseClock()
        w0 = time.perf_counter()
        asyncio.run(runner(n, clock))
        wall.append(time.perf_counter() - w0)
        cpu.append(clock.phases["start"] + clock.phases["stop"])
    print(json.dumps({"procman": procman.__file__, "cpu": cpu, "wall": wall}))


def _spawn(root: Path, config: str, n: int, repeats: int) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    out = subprocess.run(
        [sys.executable, str(HERE), "--child", str(root), config, str(n), str(repeats)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        _child(argv[1], argv[2], int(argv[3]), int(argv[4]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab")
    parser.add_argument("--against", type=Path, required=True)
    parser.add_argument("--configs", default="baseline,procman,procman-logging")
    parser.add_argument("--sizes", default="10000")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "ab.json")
    args = parser.parse_args(argv)
    roots = {"before": args.against.resolve(), "after": ROOT}
    load0 = os.getloadavg()
    data: dict[str, dict[str, dict[str, list[float]]]] = {}
    files: dict[str, str] = {}
    for p in range(args.processes):
        for n in (int(x) for x in args.sizes.split(",")):
            for config in args.configs.split(","):
                key = f"{config} {n}"
                cell = data.setdefault(key, {})
                for tree in ("before", "after") if p % 2 == 0 else ("after", "before"):
                    r = _spawn(roots[tree], config, n, args.repeats)
                    files[tree] = r["procman"]
                    got = cell.setdefault(tree, {"cpu": [], "wall": []})
                    got["cpu"] += r["cpu"]
                    got["wall"] += r["wall"]
                    print(
                        f"process {p + 1}/{args.processes} {key} {tree}: "
                        f"cpu min {min(r['cpu']) * 1e3:.1f} ms",
                        file=sys.stderr,
                        flush=True,
                    )
    load1 = os.getloadavg()
    if files.get("before") == files.get("after"):
        raise SystemExit("both trees imported the same procman")
    print(f"before: {files['before']}\nafter:  {files['after']}")
    print(
        f"load average before/after: {[round(x, 2) for x in load0]}/"
        f"{[round(x, 2) for x in load1]}; {args.processes} processes x {args.repeats} runs "
        "per tree and cell; CPU ms of start+stop (process_time), wall ms = the whole run"
    )
    header = (
        f"{'cell':<24}{'cpu min b':>10}{'cpu min a':>10}{'a/b':>7}"
        f"{'cpu med b':>10}{'cpu med a':>10}{'a/b':>7}{'wall med b':>11}{'wall med a':>11}"
    )
    print(header)
    print("-" * len(header))
    rows = {}
    for key, cell in data.items():
        b, a = cell["before"], cell["after"]
        row = {
            "cpu_min": (min(b["cpu"]), min(a["cpu"])),
            "cpu_median": (statistics.median(b["cpu"]), statistics.median(a["cpu"])),
            "wall_median": (statistics.median(b["wall"]), statistics.median(a["wall"])),
        }
        rows[key] = row
        print(
            f"{key:<24}{row['cpu_min'][0] * 1e3:>10.1f}{row['cpu_min'][1] * 1e3:>10.1f}"
            f"{row['cpu_min'][1] / row['cpu_min'][0]:>7.3f}"
            f"{row['cpu_median'][0] * 1e3:>10.1f}{row['cpu_median'][1] * 1e3:>10.1f}"
            f"{row['cpu_median'][1] / row['cpu_median'][0]:>7.3f}"
            f"{row['wall_median'][0] * 1e3:>11.1f}{row['wall_median'][1] * 1e3:>11.1f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"files": files, "load": [load0, load1], "data": data, "rows": rows}, indent=1)
        + "\n",
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
