"""Workload A on every supported Python: ``python -m benchmarks.pythons``.

For each interpreter (``/root/.pyenv/versions/3.1{1,2,3}.*/bin/python`` by
default, or each ``--python PATH``) this:

* creates, once, a virtualenv ``.bench-venvs/<version>`` at the root of this
  checkout and installs the checkout into it (``pip install -e '.[bench]'``);
  it is reused while ``pyproject.toml`` is unchanged;
* runs ``python -m benchmarks --no-extras --workloads A --sizes ... --configs
  baseline,procman,procman-logging`` in it (plus ``baseline-eager`` and
  ``procman-eager`` on 3.12+), writing ``benchmarks/results/python-<version>.json``;
* prints one table over all of them: Python x configuration x N with the
  start+stop time, us per child and the ratio to that Python's own baseline.

The interpreters run one after the other, never in parallel.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / ".bench-venvs"
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_GLOB = "/root/.pyenv/versions/3.1[123].*/bin/python"
CONFIGS = ("baseline", "procman", "procman-logging")
EAGER_CONFIGS = ("baseline-eager", "procman-eager")


@dataclass
class Interpreter:
    path: Path
    version: str  # e.g. "3.12.1"

    @property
    def minor(self) -> tuple[int, int]:
        major, minor = self.version.split(".")[:2]
        return int(major), int(minor)


def probe(path: Path) -> Interpreter:
    out = subprocess.run(
        [str(path), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return Interpreter(path, out.stdout.strip())


def find_interpreters(paths: list[str]) -> list[Interpreter]:
    found = paths or sorted(glob.glob(DEFAULT_GLOB))
    interpreters = [probe(Path(p)) for p in found]
    return sorted(interpreters, key=lambda i: [int(x) for x in i.version.split(".")[:3]])


def configs_for(interp: Interpreter, configs: tuple[str, ...] | None) -> tuple[str, ...]:
    if configs is not None:
        return configs
    return CONFIGS + (EAGER_CONFIGS if interp.minor >= (3, 12) else ())


def _stamp() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_venv(interp: Interpreter, log: Any) -> Path:
    """The venv's python for ``interp``; created and installed on first use."""
    venv = VENVS / interp.version
    python = venv / "bin" / "python"
    stamp = venv / ".procman-bench-installed"
    if python.exists() and stamp.exists() and stamp.read_text() == _stamp():
        return python
    print(f"[{interp.version}] creating {venv} (pip install -e '.[bench]')", file=log, flush=True)
    if not python.exists():
        subprocess.run([str(interp.path), "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True, cwd=ROOT)
    subprocess.run([*pip, "-e", ".[bench]"], check=True, cwd=ROOT)
    stamp.write_text(_stamp())
    return python


def run_one(
    interp: Interpreter,
    python: Path,
    sizes: str,
    configs: tuple[str, ...],
    rounds: int | None,
    log: Any,
) -> Path:
    out = RESULTS / f"python-{interp.version}.json"
    cmd = [
        str(python),
        "-m",
        "benchmarks",
        "--no-extras",
        "--workloads",
        "A",
        "--sizes",
        sizes,
        "--configs",
        ",".join(configs),
        "--json",
        str(out),
    ]
    if rounds:
        cmd += ["--rounds", str(rounds)]
    print(f"[{interp.version}] {' '.join(cmd[1:])}", file=log, flush=True)
    # the venv's editable install points at this checkout; cwd makes sure of it
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return out


def rows(version: str, doc: dict[str, Any]) -> list[tuple[str, str, float, dict[str, Any]]]:
    return [(version, r["config"], r["param"], r) for r in doc["results"] if r["workload"] == "A"]


def table(docs: dict[str, dict[str, Any]]) -> str:
    """One table: Python x configuration x N (ms, us/child, x base of the same Python)."""
    header = (
        f"{'Python':<8} {'configuration':<16} {'N':>8} {'ms':>9} {'us/child':>8} "
        f"{'x base':>6} {'x ref':>24}  note"
    )
    lines = [
        "Workload A per Python (start + graceful stop of N idle children; medians; "
        "x base = ratio to the baseline of the same Python and run)",
        header,
        "-" * len(header),
    ]
    order = list(CONFIGS + EAGER_CONFIGS)
    for version, doc in docs.items():
        cells = rows(version, doc)
        cells.sort(key=lambda c: (c[2], order.index(c[1]) if c[1] in order else len(order), c[1]))
        for _, config, n, r in cells:
            med = r.get("median") or {}
            total = med.get("total")
            ms = f"{total * 1e3:.1f}" if total is not None else "-"
            us = f"{med['us_per_child']:.2f}" if "us_per_child" in med else "-"
            xb = f"{r['ratio_baseline']:.2f}" if r.get("ratio_baseline") is not None else "-"
            xr = (
                f"{r['ratio_ref']:.2f} [{r['ref']}]"
                if r.get("ref") and r.get("ratio_ref") is not None
                else "-"
            )
            note = "" if r["status"] == "ok" else f"{r['status']}: {r.get('note', '')}"
            lines.append(
                f"{version:<8} {config:<16} {n:>8,.0f} {ms:>9} {us:>8} {xb:>6} {xr:>24}  "
                f"{note[:60]}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pythons", description=__doc__)
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="PATH",
        help=f"an interpreter (repeatable; default: every {DEFAULT_GLOB})",
    )
    parser.add_argument("--sizes", default="10000,100000", help="N for workload A")
    parser.add_argument(
        "--configs",
        help="comma-separated configurations (default baseline,procman,procman-logging "
        "and on 3.12+ baseline-eager,procman-eager)",
    )
    parser.add_argument("--rounds", type=int, help="rounds per Python (default: the harness's 3)")
    args = parser.parse_args(argv)
    configs = tuple(c for c in args.configs.split(",") if c) if args.configs else None

    interpreters = find_interpreters(args.python)
    if not interpreters:
        print(f"no interpreter found ({DEFAULT_GLOB}); give --python PATH", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    docs: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    for interp in interpreters:
        t = time.monotonic()
        try:
            python = ensure_venv(interp, sys.stderr)
            out = run_one(
                interp, python, args.sizes, configs_for(interp, configs), args.rounds, sys.stderr
            )
        except (subprocess.CalledProcessError, OSError) as exc:
            print(f"[{interp.version}] failed: {exc}", file=sys.stderr, flush=True)
            failed.append(interp.version)
            continue
        docs[interp.version] = json.loads(out.read_text(encoding="utf-8"))
        print(f"[{interp.version}] done in {time.monotonic() - t:.0f}s", file=sys.stderr)
    print(table(docs))
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    print(f"\nelapsed {time.monotonic() - t0:.0f} s; JSON in {RESULTS}/python-<version>.json")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
