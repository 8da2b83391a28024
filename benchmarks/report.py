"""Turns measured cells into the JSON document, the text table and the target checks."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterable
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
    doc["growth"] = growth_rows(doc)
    doc["targets"] = targets(doc)
    return doc


def _find(doc: dict[str, Any], workload: str, config: str, param: float) -> dict[str, Any] | None:
    for r in doc["results"]:
        if (r["workload"], r["config"], r["param"], r["status"]) == (workload, config, param, "ok"):
            found: dict[str, Any] = r
            return found
    return None


# The performance issue's sizes for the per-N targets of the default configuration.
ISSUE_SIZES = (10_000.0, 50_000.0, 100_000.0)
GROWTH_FROM, GROWTH_TO = 10_000.0, 100_000.0


def _ratio_of(r: dict[str, Any] | None, key: str) -> float | None:
    if r is None:
        return None
    value = r.get(key)
    return None if value is None else float(value)


def growth(doc: dict[str, Any], config: str) -> float | None:
    """Workload A: ``config``'s us/child at 100k divided by its us/child at 10k."""
    lo = _find(doc, "A", config, GROWTH_FROM)
    hi = _find(doc, "A", config, GROWTH_TO)
    if lo is None or hi is None:
        return None
    lo_us, hi_us = lo["median"].get("us_per_child"), hi["median"].get("us_per_child")
    if not lo_us or hi_us is None:
        return None
    return float(hi_us) / float(lo_us)


def growth_base(config: str) -> str:
    """The configuration whose growth ``config``'s growth is compared with."""
    if config.endswith("-gcfreeze"):
        return "baseline-gcfreeze"
    loop = BY_NAME[config].loop if config in BY_NAME else "asyncio"
    return {"uvloop": "baseline-uvloop", "eager": "baseline-eager"}.get(loop, "baseline")


def growth_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every workload-A configuration measured at 10k and 100k: its growth and the ratio
    to its baseline's growth (the -gcfreeze variants against baseline-gcfreeze)."""
    rows = []
    names = sorted({r["config"] for r in doc["results"] if r["workload"] == "A"}, key=_order)
    for name in names:
        g = growth(doc, name)
        if g is None:
            continue
        base = growth_base(name)
        gb = growth(doc, base)
        lo, hi = _find(doc, "A", name, GROWTH_FROM), _find(doc, "A", name, GROWTH_TO)
        assert lo is not None and hi is not None
        rows.append(
            {
                "config": name,
                "us_per_child_10k": lo["median"]["us_per_child"],
                "us_per_child_100k": hi["median"]["us_per_child"],
                "growth": g,
                "base": base,
                "base_growth": gb,
                "vs_base": g / gb if gb else None,
            }
        )
    return rows


def _growth_text(doc: dict[str, Any], config: str, base: str) -> tuple[float | None, str]:
    g, gb = growth(doc, config), growth(doc, base)
    if g is None or gb is None:
        return None, f"{config} / {base}: not measured"
    return g / gb, f"{config} {g:.2f}x / {base} {gb:.2f}x = {g / gb:.2f}"


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The performance issue's targets, each met / not met / not measured.

    Ratios are of medians, against the configuration named in the target,
    measured in the same run. The number in front of each target is the
    issue's item.
    """
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

    def per_size(
        item: int,
        config: str,
        versus: str,
        ratio: str,
        limit: float,
        ns: Iterable[float],
        note: str = "",
    ) -> None:
        """One start+stop ratio target of workload A for each N."""
        for n in ns:
            add(
                f"{item} A start+stop, {config}{note} / {versus}, N={n:,.0f}",
                _ratio_of(_find(doc, "A", config, n), ratio),
                limit,
                "x",
            )

    sizes = sorted({float(n) for n in doc["settings"]["sizes"]})
    large = sorted(set(ISSUE_SIZES) | {n for n in sizes if n >= 10_000})

    # 1. the default configuration against bare asyncio: time at 10k/50k/100k, peak RSS
    per_size(
        1, "procman-logging", "baseline", "ratio_baseline", 1.15, ISSUE_SIZES, " (default config)"
    )
    both = [
        n for n in sizes if _find(doc, "A", "procman-logging", n) and _find(doc, "A", "baseline", n)
    ]
    rss: float | None = None
    detail = ""
    if both:
        n = both[-1]
        mine = _find(doc, "A", "procman-logging", n)
        base = _find(doc, "A", "baseline", n)
        assert mine is not None and base is not None
        m_rss, b_rss = mine["median"].get("rss_per_child"), base["median"].get("rss_per_child")
        if m_rss is not None and b_rss:
            rss = m_rss / b_rss
            detail = f"N={n:,.0f}: {m_rss:,.0f} / {b_rss:,.0f} B per child"
    add(
        "1 A peak RSS per idle child, procman-logging / baseline, largest N",
        rss,
        1.15,
        "x",
        detail,
    )

    # 2. no observer against bare asyncio at every N >= 10k
    per_size(2, "procman", "baseline", "ratio_baseline", 1.05, large, " (no observer)")

    # 3. growth of the cost per child from 10k to 100k, against the baseline's
    value, main = _growth_text(doc, "procman", "baseline")
    r100 = _find(doc, "A", "procman", GROWTH_TO)
    parts = [main]
    if r100 and r100["median"].get("total"):
        share = r100["median"].get("gc_s", 0.0) / r100["median"]["total"]
        parts.append(f"cyclic GC = {share:.0%} of procman's 100k time")
    parts.append("default config: " + _growth_text(doc, "procman-logging", "baseline")[1])
    parts.append(
        "with gc.freeze() after start-up: "
        + _growth_text(doc, "procman-logging-gcfreeze", "baseline-gcfreeze")[1]
    )
    add(
        "3 A growth of us/child 10k -> 100k, procman / baseline",
        value,
        1.1,
        "x",
        "; ".join(parts),
    )

    # 4. Prometheus against bare asyncio, everything against the hand-wired floor
    per_size(4, "procman-prometheus", "baseline", "ratio_baseline", 1.3, sizes)
    per_size(4, "procman-all", "floor (hand-wired)", "ratio_ref", 1.1, sizes)

    # 5. uvloop
    per_size(5, "procman-uvloop", "baseline-uvloop", "ratio_ref", 1.1, sizes)

    # 6. reload fan-out
    reload_n = float(doc["settings"].get("reload_n", 10_000))
    r = _find(doc, "C", "procman", reload_n)
    add(
        f"6 C reload fan-out, procman / baseline, N={reload_n:,.0f}",
        _ratio_of(r, "ratio_baseline"),
        1.3,
        "x",
    )

    # 7. scrape: the longest event-loop stall while MetricsServer serves /metrics
    scrape = (doc.get("extras") or {}).get("scrape_cost") or {}
    res = scrape.get("result")
    stall: float | None = None
    detail = "needs benchmarks.scrape_cost (full run, without --no-extras)"
    children = 10_000
    if res and res.get("http"):
        children = int(res.get("children", children))
        plain, gz = res["http"]["plain"], res["http"]["gzip"]
        stall = max(plain["stall_ms"], gz["stall_ms"])
        detail = (
            f"{children:,} children under {res.get('supervisors')} supervisors, median of "
            f"{res.get('runs')} scrapes each: plain {plain['scrape_ms']:.0f} ms, "
            f"{plain['bytes']:,.0f} B, stall {plain['stall_ms']:.1f} ms "
            f"(max {plain['stall_max_ms']:.1f}); gzip {gz['scrape_ms']:.0f} ms, "
            f"{gz['bytes']:,.0f} B, stall {gz['stall_ms']:.1f} ms "
            f"(max {gz['stall_max_ms']:.1f}); ticker with no scrape "
            f"{res.get('idle_stall_ms', 0.0):.1f} ms"
        )
        frozen = res.get("frozen")
        if frozen:
            detail += (
                f"; after gc.freeze() once started: stall plain {frozen['plain']['stall_ms']:.1f}"
                f" ms, gzip {frozen['gzip']['stall_ms']:.1f} ms"
            )
    elif scrape.get("status") not in (None, "ok"):
        detail = f"benchmarks.scrape_cost: {scrape['status']}"
    add(
        f"7 scrape of {children:,} children via MetricsServer: longest event-loop stall "
        "(worse of plain / gzip)",
        stall,
        50.0,
        "ms",
        detail,
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
            f"{'N':>7}  {'configuration':<24} {'start':>9} {'stop':>9} {'total':>9} {'GC':>7} "
            f"{'us/child':>8} {'x base':>6} {'x ref':>24} {'B/child':>7}  note"
        )
        lines.append(header)
        lines.append("-" * len(header))
        for r in sorted(by_w["A"], key=lambda r: (r["param"], _order(r["config"]))):
            lines.append(_row_a(r))
        lines.append("")
        lines.append(
            "Workload A, growth of the cost per child from N=10,000 to N=100,000 (us/child at "
            "100k / at 10k; vs base = divided by the growth of the base in the same run)"
        )
        rows = growth_rows(doc)
        if not rows:
            lines.append("  not measured (needs N=10,000 and N=100,000)")
        else:
            header = (
                f"{'configuration':<26} {'us 10k':>8} {'us 100k':>8} {'growth':>7} "
                f"{'base':<18} {'base gr.':>8} {'vs base':>7}"
            )
            lines.append(header)
            lines.append("-" * len(header))
            for g in rows:
                lines.append(
                    f"{g['config']:<26} {g['us_per_child_10k']:>8.2f} "
                    f"{g['us_per_child_100k']:>8.2f} {g['growth']:>7.2f} {g['base']:<18} "
                    f"{_fmt(g['base_growth'], '.2f'):>8} {_fmt(g['vs_base'], '.2f'):>7}"
                )
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
        f"{r['param']:>7,.0f}  {r['config']:<24} {_fmt(_ms(med.get('start')), '.1f'):>9} "
        f"{_fmt(_ms(med.get('stop')), '.1f'):>9} {_fmt(_ms(med.get('total')), '.1f'):>9} "
        f"{_fmt(_ms(med.get('gc_s')), '.0f'):>7} {_fmt(med.get('us_per_child'), '.2f'):>8} "
        f"{_fmt(r['ratio_baseline'], '.2f'):>6} "
        f"{_ref(r):>24} {_fmt(med.get('rss_per_child'), ',.0f'):>7}  {_note(r)}"
    )
