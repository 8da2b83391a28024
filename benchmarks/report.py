"""Turns measured cells into the JSON document, the text table and the target checks."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from benchmarks.configs import BY_NAME
from benchmarks.harness import RATIO_METRIC, Cell, Settings


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "load_average": load,
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


def _ratio(cells: dict[tuple[str, str, float], Cell], cell: Cell, other: str) -> float | None:
    ref = cells.get((cell.workload, other, cell.param))
    if ref is None:
        return None
    metric = RATIO_METRIC[cell.workload]
    mine, theirs = cell.median().get(metric), ref.median().get(metric)
    if mine is None or not theirs:
        return None
    return mine / theirs


def build(
    cells: dict[tuple[str, str, float], Cell],
    settings: Settings,
    elapsed: float,
    machine_before: dict[str, Any] | None = None,
) -> dict[str, Any]:
    results = []
    for cell in cells.values():
        cfg = BY_NAME[cell.config]
        ref = cfg.ref if cfg.ref and cell.workload in cfg.ref_workloads else None
        results.append(
            {
                "workload": cell.workload,
                "config": cell.config,
                "param": cell.param,
                "status": cell.status,
                "note": cell.note,
                "loop": cfg.loop,
                "median": cell.median(),
                "ratio_baseline": _ratio(cells, cell, "baseline"),
                "ref": ref,
                "ratio_ref": _ratio(cells, cell, ref) if ref else None,
                "rounds": [
                    {
                        k: v
                        for k, v in r.items()
                        if k in ("status", "metrics", "info", "reason", "wall")
                    }
                    for r in cell.runs
                ],
            }
        )
    after = machine()
    if machine_before is not None:
        after["load_average_before"] = machine_before.get("load_average")
    doc: dict[str, Any] = {
        "machine": after,
        "settings": {
            "sizes": list(settings.sizes),
            "rounds": settings.rounds,
            "restart_seconds": settings.restart_seconds,
            "reload_n": settings.reload_n,
            "reload_repeats": settings.reload_repeats,
            "storm_n": settings.storm_n,
            "storm_repeats": settings.storm_repeats,
            "ready_n": settings.ready_n,
            "workloads": settings.workloads,
            "slow_limit_s": settings.slow_limit,
        },
        "configs": {name: BY_NAME[name].description for name in settings.configs},
        "elapsed_s": elapsed,
        "results": results,
    }
    doc["targets"] = targets(doc)
    return doc


def _find(doc: dict[str, Any], workload: str, config: str, param: float) -> dict[str, Any] | None:
    for r in doc["results"]:
        if (r["workload"], r["config"], r["param"], r["status"]) == (workload, config, param, "ok"):
            found: dict[str, Any] = r
            return found
    return None


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's speed targets, each met / not met / not measured."""
    out: list[dict[str, Any]] = []

    def add(name: str, value: float | None, limit: float, unit: str, detail: str = "") -> None:
        status = "not measured" if value is None else "met" if value <= limit else "not met"
        out.append(
            {
                "target": name,
                "value": value,
                "limit": limit,
                "unit": unit,
                "status": status,
                "detail": detail,
            }
        )

    for n in (10_000.0, 50_000.0):
        r = _find(doc, "A", "procman", n)
        add(
            f"A procman start+stop vs baseline, N={n:,.0f}",
            r["ratio_baseline"] if r else None,
            1.25,
            "x",
        )
    sizes = [
        r["param"]
        for r in doc["results"]
        if r["workload"] == "A" and r["config"] == "procman" and r["status"] == "ok"
    ]
    big = max(sizes) if sizes else None
    r = _find(doc, "A", "procman", big) if big else None
    add(
        f"A procman peak RSS per idle child, N={big or 0:,.0f}",
        r["median"].get("rss_per_child") if r else None,
        2048,
        "bytes",
        f"live RSS per child when all run: {r['median'].get('live_per_child', 0):.0f} B"
        if r
        else "",
    )
    r100 = _find(doc, "A", "procman", 100_000.0)
    add(
        "A procman 100k start+stop",
        r100["median"]["total"] if r100 else None,
        2.0,
        "s",
    )
    r10 = _find(doc, "A", "procman", 10_000.0)
    growth = None
    detail = ""
    if r100 and r10:
        growth = r100["median"]["us_per_child"] / r10["median"]["us_per_child"]
        b100, b10 = _find(doc, "A", "baseline", 100_000.0), _find(doc, "A", "baseline", 10_000.0)
        if b100 and b10:
            detail = (
                f"baseline: {b100['median']['us_per_child'] / b10['median']['us_per_child']:.2f}x"
            )
        gc_share = r100["median"].get("gc_s", 0.0) / r100["median"]["total"]
        detail += f"; cyclic GC = {gc_share:.0%} of procman's 100k time"
    add("A procman cost per child 100k / 10k", growth, 1.3, "x", detail)
    for n in (10_000.0, 100_000.0):
        r = _find(doc, "A", "procman-all", n)
        add(
            f"A procman fully instrumented vs hand-wired floor, N={n:,.0f}",
            r["ratio_ref"] if r else None,
            1.3,
            "x",
        )
    return out


def _fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def text(doc: dict[str, Any]) -> str:
    """The human-readable report (tables and targets)."""
    lines: list[str] = []
    m = doc["machine"]
    s = doc["settings"]
    lines.append(
        f"procman benchmarks: {m['nproc']} CPU ({m['cpu']}), Python {m['python']}, "
        f"load average before/after {m.get('load_average_before')}/{m.get('load_average')}; "
        f"{s['rounds']} round(s), medians; x base = ratio to the bare-asyncio baseline "
        "of the same run, x ref = ratio to the reference named in brackets"
    )
    by_w: dict[str, list[dict[str, Any]]] = {}
    for r in doc["results"]:
        by_w.setdefault(r["workload"], []).append(r)

    if "A" in by_w:
        lines.append("")
        lines.append(
            "Workload A: start N idle children, wait until all run, stop all "
            "(times in ms; GC = cyclic GC time within them; B/child = peak RSS growth per child)"
        )
        header = (
            f"{'N':>7}  {'configuration':<20} {'start':>9} {'stop':>9} {'total':>9} {'GC':>7} "
            f"{'us/child':>8} {'x base':>6} {'x ref':>18} {'B/child':>7}  note"
        )
        lines.append(header)
        lines.append("-" * len(header))
        for r in sorted(by_w["A"], key=lambda r: (r["param"], _order(r["config"]))):
            lines.append(_row_a(r))
    if "B" in by_w:
        lines.append("")
        lines.append(
            "Workload B: crash-looping child restarted with zero backoff "
            f"({s['restart_seconds']:g} s per run)"
        )
        header = (
            f"{'configuration':<20} {'restarts/s':>11} {'us/restart':>10} {'x base':>6} "
            f"{'x ref':>18}  note"
        )
        lines.append(header)
        lines.append("-" * len(header))
        for r in sorted(by_w["B"], key=lambda r: _order(r["config"])):
            med = r["median"]
            lines.append(
                f"{r['config']:<20} {_fmt(med.get('restarts_per_s'), ',.0f'):>11} "
                f"{_fmt(med.get('us_per_restart'), '.2f'):>10} "
                f"{_fmt(r['ratio_baseline'], '.2f'):>6} {_ref(r):>18}  {_note(r)}"
            )
    if "C" in by_w:
        lines.append("")
        lines.append(
            f"Workload C: reload fan-out to {s['reload_n']:,} children "
            "(ms until every child saw the reload; call = until reload() returned)"
        )
        header = (
            f"{'configuration':<20} {'reload':>9} {'call':>9} {'us/child':>8} {'x base':>6} "
            f"{'x ref':>18}  note"
        )
        lines.append(header)
        lines.append("-" * len(header))
        for r in sorted(by_w["C"], key=lambda r: _order(r["config"])):
            med = r["median"]
            reload = med.get("reload")
            lines.append(
                f"{r['config']:<20} {_fmt(_ms(reload), '.1f'):>9} "
                f"{_fmt(_ms(med.get('reload_call')), '.1f'):>9} "
                f"{_fmt(reload / r['param'] * 1e6 if reload else None, '.2f'):>8} "
                f"{_fmt(r['ratio_baseline'], '.2f'):>6} {_ref(r):>18}  {_note(r)}"
            )
    if "D" in by_w:
        lines.append("")
        lines.append(
            f"Workload D: restart storm, ONE_FOR_ALL over {s.get('storm_n', 0):,} children, "
            f"one fails, zero backoff (ms from the failure until all run again; median of "
            f"{s.get('storm_repeats', 0)} storms per run; concurrent = the others stopped at once)"
        )
        header = (
            f"{'configuration':<20} {'storm':>9} {'min':>9} {'max':>9} {'concurrent':>10} "
            f"{'us/child':>8} {'x base':>6}  note"
        )
        lines.append(header)
        lines.append("-" * len(header))
        for r in sorted(by_w["D"], key=lambda r: _order(r["config"])):
            med = r["median"]
            storm = med.get("storm")
            lines.append(
                f"{r['config']:<20} {_fmt(_ms(storm), '.1f'):>9} "
                f"{_fmt(_ms(med.get('storm_min')), '.1f'):>9} "
                f"{_fmt(_ms(med.get('storm_max')), '.1f'):>9} "
                f"{_fmt(_ms(med.get('storm_concurrent')), '.1f'):>10} "
                f"{_fmt(storm / r['param'] * 1e6 if storm else None, '.1f'):>8} "
                f"{_fmt(r['ratio_baseline'], '.2f'):>6}  {_note(r)}"
            )
    if "E" in by_w:
        lines.append("")
        lines.append(
            f"Workload E: start {s.get('ready_n', 0):,} wait_ready children (ms until the "
            "supervisor knows all are ready; stop = the graceful shutdown after it; "
            "ordered = one at a time, stop in reverse)"
        )
        header = (
            f"{'configuration':<20} {'concurrent':>10} {'stop':>9} {'ordered':>9} {'stop':>9} "
            f"{'ord/conc':>8} {'x base':>6} {'conc x base':>11}  note"
        )
        lines.append(header)
        lines.append("-" * len(header))
        base_conc = next(
            (
                r["median"].get("concurrent")
                for r in by_w["E"]
                if r["config"] == "baseline" and r["status"] == "ok"
            ),
            None,
        )
        for r in sorted(by_w["E"], key=lambda r: _order(r["config"])):
            med = r["median"]
            conc, ordered = med.get("concurrent"), med.get("ordered")
            lines.append(
                f"{r['config']:<20} {_fmt(_ms(conc), '.1f'):>10} "
                f"{_fmt(_ms(med.get('concurrent_stop')), '.1f'):>9} "
                f"{_fmt(_ms(ordered), '.1f'):>9} "
                f"{_fmt(_ms(med.get('ordered_stop')), '.1f'):>9} "
                f"{_fmt(ordered / conc if conc and ordered else None, '.2f'):>8} "
                f"{_fmt(r['ratio_baseline'], '.2f'):>6} "
                f"{_fmt(conc / base_conc if conc and base_conc else None, '.2f'):>11}  "
                f"{_note(r)}"
            )
    lines.append("")
    lines.append("Targets")
    for t in doc["targets"]:
        value = t["value"]
        shown = (
            "-" if value is None else (f"{value:,.0f}" if t["unit"] == "bytes" else f"{value:.2f}")
        )
        detail = f" ({t['detail']})" if t["detail"] else ""
        lines.append(
            f"  [{t['status']:>12}] {t['target']}: {shown} {t['unit']} "
            f"(limit {t['limit']:g} {t['unit']}){detail}"
        )
    lines.append(f"\nelapsed {doc['elapsed_s']:.0f} s")
    return "\n".join(lines)


def _order(config: str) -> int:
    names = list(BY_NAME)
    return names.index(config) if config in names else len(names)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def _ref(r: dict[str, Any]) -> str:
    if not r.get("ref") or r.get("ratio_ref") is None:
        return "-"
    return f"{r['ratio_ref']:.2f} [{r['ref']}]"


def _note(r: dict[str, Any]) -> str:
    if r["status"] == "ok" and r["note"]:
        return str(r["note"])[:70]
    if r["status"] == "ok":
        info = [x.get("info", {}) for x in r["rounds"] if x.get("status") == "ok"]
        if info and info[0].get("graceful") is False:
            return "cancel only"
        return ""
    note = r["note"].replace("Unavailable: ", "").replace("\n", " ")
    return f"{r['status']}: {note}"[:70]


def _row_a(r: dict[str, Any]) -> str:
    med = r["median"]
    return (
        f"{r['param']:>7,.0f}  {r['config']:<20} {_fmt(_ms(med.get('start')), '.1f'):>9} "
        f"{_fmt(_ms(med.get('stop')), '.1f'):>9} {_fmt(_ms(med.get('total')), '.1f'):>9} "
        f"{_fmt(_ms(med.get('gc_s')), '.0f'):>7} {_fmt(med.get('us_per_child'), '.2f'):>8} "
        f"{_fmt(r['ratio_baseline'], '.2f'):>6} "
        f"{_ref(r):>18} {_fmt(med.get('rss_per_child'), ',.0f'):>7}  {_note(r)}"
    )
