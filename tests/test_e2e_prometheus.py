"""End to end: `procman demo` scraped by a real Prometheus on loopback.

Starts the demo with its metrics server and a real ``prometheus`` (Debian's
``/usr/bin/prometheus``) scraping it every second with the recording and
alert rules of ``dashboards/`` loaded, waits until the flaky worker's
restarts reached the recording rules, then runs every dashboard query
(Grafana variables filled in) and every recording rule expression through
the HTTP API and requires each to return at least one series.

Fails (does not skip) when CI is set and prometheus is missing. Both
processes are always killed at the end; everything listens on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import require

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "dashboards"
DEADLINE = 40.0  # seconds for the demo and Prometheus to produce everything we query

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""


def wait_for(what: str, cond: Callable[[], bool], deadline: float, *logs: Path) -> None:
    while not cond():
        if time.monotonic() > deadline:
            tails = "\n".join(
                f"--- {p.name}:\n{p.read_text(errors='replace')[-3000:]}" for p in logs
            )
            pytest.fail(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.25)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class Prometheus:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def api(self, path: str, **params: str) -> Any:
        status, body = http_get(f"{self.base}{path}?{urllib.parse.urlencode(params)}")
        assert status == 200, (path, params, status, body[:500])
        payload = json.loads(body)
        assert payload["status"] == "success", payload
        return payload["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", (expr, data["resultType"])
        result: list[dict[str, Any]] = data["result"]
        return result

    def has_series(self, expr: str) -> bool:
        try:
            return bool(self.query(expr))
        except AssertionError:
            return False


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Prometheus, str]]:
    prometheus_bin = shutil.which("prometheus") or "/usr/bin/prometheus"
    require(os.access(prometheus_bin, os.X_OK), "needs the prometheus server (Debian: prometheus)")
    demo_port, prom_port = free_port(), free_port()
    demo_log, prom_log = tmp_path / "demo.log", tmp_path / "prometheus.log"
    target = f"127.0.0.1:{demo_port}"
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(DASHBOARDS / "recording.yml"), str(DASHBOARDS / "alerts.yml")],
                "scrape_configs": [
                    {
                        "job_name": "procman",
                        "scrape_timeout": "1s",
                        "static_configs": [{"targets": [target]}],
                    }
                ],
            }
        )
    )
    env = {**os.environ, "PROCMAN_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen[bytes]] = []
    with demo_log.open("wb") as dlog, prom_log.open("wb") as plog:
        try:
            procs.append(
                subprocess.Popen(
                    [
                        *(sys.executable, "-m", "procman", "demo", "--duration", "60"),
                        *("--metrics-port", str(demo_port), "--metrics-host", "127.0.0.1"),
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=dlog,
                    stderr=subprocess.STDOUT,
                )
            )
            procs.append(
                subprocess.Popen(
                    [
                        prometheus_bin,
                        f"--config.file={config}",
                        f"--storage.tsdb.path={tmp_path / 'data'}",
                        f"--web.listen-address=127.0.0.1:{prom_port}",
                        "--log.level=warn",
                    ],
                    cwd=tmp_path,
                    stdout=plog,
                    stderr=subprocess.STDOUT,
                )
            )
            deadline = time.monotonic() + 20
            wait_for(
                "the demo's /healthz",
                lambda: http_get(f"http://{target}/healthz", 1)[0] == 200,
                deadline,
                demo_log,
            )
            wait_for(
                "prometheus /-/ready",
                lambda: http_get(f"http://127.0.0.1:{prom_port}/-/ready", 1)[0] == 200,
                deadline,
                prom_log,
            )
            yield Prometheus(prom_port), target
        finally:
            for proc in reversed(procs):
                stop(proc)


def test_dashboard_queries_and_recording_rules_return_series(
    stack: tuple[Prometheus, str], tmp_path: Path
) -> None:
    from dashboards_util import dashboard_queries, recording_rule_exprs

    prom, target = stack
    logs = (tmp_path / "demo.log", tmp_path / "prometheus.log")
    deadline = time.monotonic() + DEADLINE
    sel = f'job="procman", instance="{target}"'
    wait_for(
        "the target to be scraped as up",
        lambda: any(s["value"][1] == "1" for s in prom.query(f"up{{{sel}}}")),
        deadline,
        *logs,
    )
    # the flaky worker restarted, and the restart reached the recording rules (rate windows
    # need two samples on each side of an increase)
    wait_for(
        "a restart of demo/flaky seen by the recording rules",
        lambda: (
            prom.has_series(f'procman:child_restarts:rate5m{{{sel}, child="flaky"}} > 0')
            and prom.has_series(f"procman_supervisor:child_restarts:rate5m{{{sel}}} > 0")
        ),
        deadline,
        *logs,
    )
    wait_for(
        "three scrapes of every series",
        lambda: prom.has_series(f"count_over_time(procman_build_info{{{sel}}}[1m]) >= 3"),
        deadline,
        *logs,
    )

    # the target's own view: the contract metrics and both supervisors are there
    supervisors = {s["metric"]["supervisor"] for s in prom.query(f"procman_children{{{sel}}}")}
    assert supervisors == {"demo", "demo/nested"}
    flaky = prom.query(f'procman_child_failures_total{{{sel}, child="flaky"}}')
    assert [s["metric"]["error_type"] for s in flaky] == ["FlakyError"]

    # every rule file loaded and every rule evaluated without error
    groups = prom.api("/api/v1/rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert rules, "no rules loaded"
    broken = [(r["name"], r.get("lastError")) for r in rules if r.get("health") == "err"]
    assert not broken, broken

    empty: list[str] = []
    checked = 0
    for supervisor in (".*", "demo"):
        variables = {
            "job": "procman",
            "instance": target,
            "supervisor": supervisor,
            "__rate_interval": "1m",
            "__interval": "1s",
            "__range": "5m",
        }
        queries = dashboard_queries(variables=variables)
        assert queries, "the dashboard has no queries"
        for expr in queries:
            assert "$" not in expr, expr
            checked += 1
            if not prom.query(expr):
                empty.append(f"[supervisor={supervisor}] {expr}")
    records = recording_rule_exprs()
    assert records, "no recording rules"
    for name, expr in records.items():
        checked += 1
        if not prom.query(expr):
            empty.append(f"[expr of {name}] {expr}")
        checked += 1
        if not prom.query(f"{name}{{{sel}}}"):
            empty.append(f"[recorded series] {name}")
    print(f"e2e: {checked} queries returned series")
    assert not empty, f"{len(empty)} of {checked} queries returned no series:\n" + "\n".join(empty)
