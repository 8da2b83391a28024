"""The benchmark harness's --quick mode runs end to end and reports correctly.

Checks the harness only (tables, JSON content, ratios, availability
handling), never the timings themselves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

sys.path.insert(0, str(ROOT))

from benchmarks.configs import CONFIGS  # noqa: E402

QUICK_SIZES = (1_000.0, 10_000.0)


def _run_python(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in the repository, importing this checkout; it must exit 0."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    proc = _run_python("-m", "benchmarks", "--quick", "--quiet", "--json", str(out))
    return proc.stdout, json.loads(out.read_text(encoding="utf-8"))


def _results(doc: dict[str, Any], workload: str) -> dict[tuple[str, float], dict[str, Any]]:
    return {(r["config"], r["param"]): r for r in doc["results"] if r["workload"] == workload}


def test_every_configuration_and_phase_is_in_the_json(
    quick_run: tuple[str, dict[str, Any]],
) -> None:
    _, doc = quick_run
    a = _results(doc, "A")
    for cfg in CONFIGS:
        for n in QUICK_SIZES:
            r = a[(cfg.name, n)]
            assert r["status"] in {"ok", "unavailable", "skipped", "error"}
            if r["status"] != "ok":
                assert r["note"], f"{cfg.name} {n}: a non-ok cell must say why"
                continue
            med = r["median"]
            for key in ("start", "stop", "total", "us_per_child", "rss_per_child"):
                assert key in med, (cfg.name, n, key)
            assert med["start"] > 0 and med["stop"] > 0
            assert med["total"] == pytest.approx(med["start"] + med["stop"])
            assert med["us_per_child"] == pytest.approx(med["total"] / n * 1e6)
            assert len(r["rounds"]) == 1
    b = _results(doc, "B")
    c = _results(doc, "C")
    for cfg in CONFIGS:
        if "B" in cfg.workloads:
            assert len([k for k in b if k[0] == cfg.name]) == 1
        if "C" in cfg.workloads:
            assert len([k for k in c if k[0] == cfg.name]) == 1
    # the core configurations must always be measurable
    for name in ("baseline", "procman", "baseline-uvloop", "procman-uvloop"):
        assert a[(name, 10_000.0)]["status"] == "ok"
    (bb,) = [r for k, r in b.items() if k[0] == "baseline"]
    assert bb["status"] == "ok" and bb["median"]["restarts"] > 0
    (cp,) = [r for k, r in c.items() if k[0] == "procman"]
    assert cp["status"] == "ok" and cp["median"]["reload"] > 0


def test_ratios_are_computed_against_the_same_run(quick_run: tuple[str, dict[str, Any]]) -> None:
    _, doc = quick_run
    for r in doc["results"]:
        if r["status"] != "ok":
            assert r["ratio_baseline"] is None
            continue
        base = next(
            x
            for x in doc["results"]
            if x["workload"] == r["workload"]
            and x["param"] == r["param"]
            and x["config"] == "baseline"
        )
        metric = {"A": "total", "B": "us_per_restart", "C": "reload"}[r["workload"]]
        assert r["ratio_baseline"] == pytest.approx(r["median"][metric] / base["median"][metric])
        if r["config"] == "baseline":
            assert r["ratio_baseline"] == pytest.approx(1.0)
    pu = next(x for x in doc["results"] if x["workload"] == "A" and x["config"] == "procman-uvloop")
    assert pu["ref"] == "baseline-uvloop" and pu["ratio_ref"] is not None


def test_table_targets_and_machine_are_reported(quick_run: tuple[str, dict[str, Any]]) -> None:
    stdout, doc = quick_run
    assert "Workload A" in stdout and "Workload B" in stdout and "Workload C" in stdout
    for cfg in CONFIGS:
        assert cfg.name in stdout
    assert "Targets" in stdout
    statuses = {t["target"]: t["status"] for t in doc["targets"]}
    # quick mode has no 50k / 100k and runs no scrape
    assert statuses[f"{DEFAULT_VS_BASE}, N=100,000"] == "not measured"
    assert statuses[GROWTH] == "not measured"
    assert statuses[SCRAPE] == "not measured"
    for name in (
        f"{DEFAULT_VS_BASE}, N=10,000",
        f"{NO_OBSERVER_VS_BASE}, N=10,000",
        f"{UVLOOP}, N=1,000",
        f"{RELOAD}, N=10,000",
        RSS,
    ):
        assert statuses[name] in {"met", "not met"}, name
    for t in doc["targets"]:
        assert f"[{t['status']:>12}] {t['target']}: " in stdout
    assert "growth of the cost per child" in stdout
    assert doc["machine"]["nproc"] >= 1 and doc["machine"]["python"]
    assert doc["settings"]["rounds"] == 1 and doc["settings"]["sizes"] == [1000, 10000]


# The target names (see benchmarks.report.targets).
DEFAULT_VS_BASE = "1 A start+stop, procman-logging (default config) / baseline"
RSS = "1 A peak RSS per idle child, procman-logging / baseline, largest N"
NO_OBSERVER_VS_BASE = "2 A start+stop, procman (no observer) / baseline"
GROWTH = "3 A growth of us/child 10k -> 100k, procman / baseline"
PROMETHEUS = "4 A start+stop, procman-prometheus / baseline"
ALL_VS_FLOOR = "4 A start+stop, procman-all / floor (hand-wired)"
UVLOOP = "5 A start+stop, procman-uvloop / baseline-uvloop"
RELOAD = "6 C reload fan-out, procman / baseline"
SCRAPE = (
    "7 scrape of 10,000 children via MetricsServer: longest event-loop stall "
    "(worse of plain / gzip)"
)


def _a(config: str, n: float, us: float, rss: float = 1000.0, **extra: Any) -> dict[str, Any]:
    return {
        "workload": "A",
        "config": config,
        "param": n,
        "status": "ok",
        "note": "",
        "median": {"us_per_child": us, "total": us * n / 1e6, "rss_per_child": rss, "gc_s": 0.0},
        **extra,
    }


def _synthetic() -> dict[str, Any]:
    """A document where each target has a known outcome.

    met: default config at 10k, RSS, growth, uvloop, reload, scrape;
    not met: default config at 50k, no observer at 10k, Prometheus at 10k, all/floor at 10k;
    not measured: default config at 100k (no baseline), no observer at 50k (not run).
    """
    results = [
        _a("baseline", 10_000.0, 10.0, rss=1000.0, ratio_baseline=1.0),
        _a("baseline", 50_000.0, 10.0, rss=1000.0, ratio_baseline=1.0),
        _a("baseline", 100_000.0, 20.0, rss=1000.0),
        _a("procman-logging", 10_000.0, 11.0, rss=1100.0, ratio_baseline=1.10),
        _a("procman-logging", 50_000.0, 13.0, rss=1100.0, ratio_baseline=1.30),
        # its baseline at 100k failed: the ratio is missing
        _a("procman-logging", 100_000.0, 30.0, rss=1100.0, ratio_baseline=None),
        _a("procman", 10_000.0, 11.0, ratio_baseline=1.10),
        _a("procman", 100_000.0, 22.0, ratio_baseline=1.04),  # growth 2.0 vs 2.0
        _a("procman-prometheus", 10_000.0, 14.0, ratio_baseline=1.40),
        _a("procman-all", 10_000.0, 50.0, ratio_baseline=5.0, ref="floor", ratio_ref=1.2),
        _a("procman-uvloop", 10_000.0, 9.0, ref="baseline-uvloop", ratio_ref=1.05),
        _a("baseline-gcfreeze", 10_000.0, 10.0),
        _a("baseline-gcfreeze", 100_000.0, 15.0),
        _a("procman-logging-gcfreeze", 10_000.0, 11.0),
        _a("procman-logging-gcfreeze", 100_000.0, 18.0),
        {
            "workload": "C",
            "config": "procman",
            "param": 10_000.0,
            "status": "ok",
            "note": "",
            "median": {"reload": 0.02},
            "ratio_baseline": 1.2,
        },
    ]
    http = {
        "plain": {"scrape_ms": 600.0, "bytes": 7e6, "stall_ms": 20.0, "stall_max_ms": 30.0},
        "gzip": {"scrape_ms": 650.0, "bytes": 4e5, "stall_ms": 40.0, "stall_max_ms": 60.0},
    }
    return {
        "settings": {"sizes": [10000, 50000, 100000], "reload_n": 10000},
        "results": results,
        "extras": {
            "scrape_cost": {
                "status": "ok",
                "result": {
                    "children": 10000,
                    "supervisors": 100,
                    "runs": 7,
                    "http": http,
                    "idle_stall_ms": 1.1,
                },
            }
        },
    }


def test_targets_on_a_synthetic_document() -> None:
    from benchmarks import report

    doc = _synthetic()
    found = {t["target"]: t for t in report.targets(doc)}
    expected = {
        f"{DEFAULT_VS_BASE}, N=10,000": ("met", 1.10),
        f"{DEFAULT_VS_BASE}, N=50,000": ("not met", 1.30),
        f"{DEFAULT_VS_BASE}, N=100,000": ("not measured", None),
        RSS: ("met", 1.10),
        f"{NO_OBSERVER_VS_BASE}, N=10,000": ("not met", 1.10),
        f"{NO_OBSERVER_VS_BASE}, N=50,000": ("not measured", None),
        f"{NO_OBSERVER_VS_BASE}, N=100,000": ("met", 1.04),
        GROWTH: ("met", 1.0),
        f"{PROMETHEUS}, N=10,000": ("not met", 1.40),
        f"{PROMETHEUS}, N=50,000": ("not measured", None),
        f"{ALL_VS_FLOOR}, N=10,000": ("not met", 1.2),
        f"{UVLOOP}, N=10,000": ("met", 1.05),
        f"{UVLOOP}, N=100,000": ("not measured", None),
        f"{RELOAD}, N=10,000": ("met", 1.2),
        SCRAPE: ("met", 40.0),
    }
    for name, (status, value) in expected.items():
        assert name in found, (name, sorted(found))
        assert found[name]["status"] == status, (name, found[name])
        if value is None:
            assert found[name]["value"] is None
        else:
            assert found[name]["value"] == pytest.approx(value), name
    # the RSS target compares the largest N where both ran
    assert "N=100,000: 1,100 / 1,000 B per child" in found[RSS]["detail"]
    # growth: procman 2.0x / baseline 2.0x; with gc.freeze: 1.64x / 1.5x
    detail = found[GROWTH]["detail"]
    assert "procman 2.00x / baseline 2.00x = 1.00" in detail
    assert "procman-logging-gcfreeze 1.64x / baseline-gcfreeze 1.50x = 1.09" in detail
    assert "gzip 650 ms, 400,000 B, stall 40.0 ms (max 60.0)" in found[SCRAPE]["detail"]
    # the limits are the issue's
    limits = {name: found[name]["limit"] for name in found}
    assert limits[f"{DEFAULT_VS_BASE}, N=10,000"] == 1.15 and limits[RSS] == 1.15
    assert limits[f"{NO_OBSERVER_VS_BASE}, N=10,000"] == 1.05 and limits[GROWTH] == 1.1
    assert limits[f"{PROMETHEUS}, N=10,000"] == 1.3 and limits[f"{ALL_VS_FLOOR}, N=10,000"] == 1.1
    assert limits[f"{UVLOOP}, N=10,000"] == 1.1 and limits[f"{RELOAD}, N=10,000"] == 1.3
    assert limits[SCRAPE] == 50.0

    # growth table: every config with 10k and 100k, against its own baseline
    rows = {g["config"]: g for g in report.growth_rows(doc)}
    assert rows["procman"]["vs_base"] == pytest.approx(1.0)
    assert rows["procman-logging-gcfreeze"]["base"] == "baseline-gcfreeze"
    assert rows["procman-logging-gcfreeze"]["vs_base"] == pytest.approx((18 / 11) / 1.5)

    # a growth past the limit and a scrape stall past it are "not met"
    doc["results"] = [
        _a("procman", 100_000.0, 33.0) if r["config"] == "procman" and r["param"] == 1e5 else r
        for r in doc["results"]
    ]
    doc["extras"]["scrape_cost"]["result"]["http"]["plain"]["stall_ms"] = 80.0
    found = {t["target"]: t for t in report.targets(doc)}
    assert found[GROWTH]["status"] == "not met" and found[GROWTH]["value"] == pytest.approx(1.5)
    assert found[SCRAPE]["status"] == "not met" and found[SCRAPE]["value"] == 80.0

    # no scrape figures (quick run, or the extra failed): not measured, saying why
    doc["extras"] = {"scrape_cost": {"status": "timeout"}}
    found = {t["target"]: t for t in report.targets(doc)}
    assert found[SCRAPE]["status"] == "not measured"
    assert "timeout" in found[SCRAPE]["detail"]


def _worker(*args: str) -> dict[str, Any]:
    proc = _run_python("-m", "benchmarks.worker", *args)
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("BENCH-RESULT ")
    result: dict[str, Any] = json.loads(line[len("BENCH-RESULT ") :])
    return result


@pytest.mark.parametrize("config", ["baseline-gcfreeze", "procman-logging-gcfreeze"])
def test_gcfreeze_runners_freeze_after_start_up(config: str) -> None:
    result = _worker("A", config, "200")
    assert result["status"] == "ok", result
    metrics = result["metrics"]
    assert metrics["frozen_objects"] > 200  # every child's task and coroutine at least
    assert metrics["start"] > 0 and metrics["stop"] > 0


def test_gcfreeze_runner_unfreezes_after_the_stop() -> None:
    import asyncio
    import gc

    from benchmarks.measure import PhaseClock
    from benchmarks.workload_a import RUNNERS

    async def once(name: str) -> dict[str, Any]:
        return await RUNNERS[name](50, PhaseClock())

    for name in ("baseline-gcfreeze", "procman-logging-gcfreeze"):
        out = asyncio.run(once(name))
        assert out["frozen_objects"] > 50
        assert gc.get_freeze_count() == 0, name


def test_scrape_cost_writes_its_figures(tmp_path: Path) -> None:
    from benchmarks.extras import parse_marker

    out = tmp_path / "scrape.json"
    proc = _run_python(
        "-m",
        "benchmarks.scrape_cost",
        "--children",
        "200",
        "--supervisors",
        "4",
        "--runs",
        "2",
        "--json",
        str(out),
    )
    doc = parse_marker(proc.stdout, "SCRAPE-RESULT ")
    assert doc is not None
    assert doc == json.loads(out.read_text(encoding="utf-8"))
    assert doc["children"] == 200 and doc["supervisors"] == 4
    plain, gz = doc["http"]["plain"], doc["http"]["gzip"]
    assert plain["bytes"] == plain["decoded_bytes"] > gz["bytes"] > 0
    assert gz["decoded_bytes"] > gz["bytes"]
    for h in (plain, gz):
        assert h["scrape_ms"] > 0 and 0 < h["stall_ms"] <= h["stall_max_ms"]
        assert len(h["stalls_ms"]) == 2


def test_pythons_table_and_config_choice() -> None:
    from benchmarks import pythons

    old = pythons.Interpreter(Path("/x/3.11/bin/python"), "3.11.7")
    new = pythons.Interpreter(Path("/x/3.13/bin/python"), "3.13.0")
    assert pythons.configs_for(old, None) == ("baseline", "procman", "procman-logging")
    assert pythons.configs_for(new, None)[-2:] == ("baseline-eager", "procman-eager")
    assert pythons.configs_for(new, ("baseline",)) == ("baseline",)
    doc = {
        "results": [
            _a("baseline", 1000.0, 6.0, ratio_baseline=1.0),
            _a(
                "procman-eager",
                1000.0,
                7.0,
                ratio_baseline=1.2,
                ref="baseline-eager",
                ratio_ref=1.1,
            ),
            {
                "workload": "A",
                "config": "baseline-eager",
                "param": 1000.0,
                "status": "unavailable",
                "note": "needs 3.12",
                "median": {},
                "ratio_baseline": None,
            },
        ]
    }
    text = pythons.table({"3.13.0": doc})
    lines = text.splitlines()
    assert any(ln.startswith("3.13.0   baseline ") and " 6.00 " in ln for ln in lines)
    assert any("procman-eager" in ln and "1.10 [baseline-eager]" in ln for ln in lines)
    assert any("baseline-eager" in ln and "unavailable: needs 3.12" in ln for ln in lines)
