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


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--quiet", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
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
    names = [t["target"] for t in doc["targets"]]
    assert any("N=10,000" in n for n in names) and any("100k" in n for n in names)
    statuses = {t["target"]: t["status"] for t in doc["targets"]}
    assert statuses["A procman 100k start+stop"] == "not measured"  # quick mode has no 100k
    assert statuses["A procman start+stop vs baseline, N=10,000"] in {"met", "not met"}
    assert doc["machine"]["nproc"] >= 1 and doc["machine"]["python"]
    assert doc["settings"]["rounds"] == 1 and doc["settings"]["sizes"] == [1000, 10000]
