"""Static checks of the Grafana dashboard and Prometheus rules in ``dashboards/``.

The rule files are checked and unit-tested with ``promtool`` (Debian package
``prometheus``; set ``PROMTOOL`` to use another binary). Without promtool the
promtool tests are skipped locally and fail when ``CI`` is set.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

try:
    from tests import dashboards_util as du
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    import dashboards_util as du

EXPECTED_ALERTS = {
    "ProcmanRestartStorm",
    "ProcmanChildFailingRepeatedly",
    "ProcmanSlowShutdown",
    "ProcmanStopTimeouts",
    "ProcmanTreeNotReady",
    "ProcmanChildStuckStarting",
}
SEVERITIES = {"info", "warning", "critical"}
RANGE_FUNCTIONS = re.compile(r"\b(rate|irate|increase)\s*\(")
REQUIRED_MATCHERS = {
    "job": ("=", "$job"),
    "instance": ("=~", "$instance"),
    "supervisor": ("=~", "$supervisor"),
}
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
RECORD_NAME = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z0-9_]+$")


# -- promtool ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def promtool() -> str:
    path = du.find_promtool()
    if path is None:
        if du.in_ci():
            pytest.fail(du.PROMTOOL_MISSING + "; it is required when CI is set")
        pytest.skip(du.PROMTOOL_MISSING)
    return path


def run_promtool(promtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=du.REPO,
    )


def _rules_found(output: str) -> int:
    match = re.search(r"SUCCESS: (\d+) rules found", output)
    assert match, output
    return int(match.group(1))


@pytest.mark.parametrize("path", [du.RECORDING, du.ALERTS], ids=lambda p: p.name)
def test_promtool_check_rules(promtool: str, path: Path) -> None:
    result = run_promtool(promtool, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    # The util's small YAML reader sees exactly the rules promtool sees.
    assert _rules_found(result.stdout) == len(du.parse_rules(path))


def test_promtool_test_rules(promtool: str) -> None:
    result = run_promtool(promtool, "test", "rules", du.RULES_TEST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """Every dashboard query, variables substituted, parses (as a recording rule)."""
    rules = [
        {"record": f"dashboard:query_{n}:check", "expr": expr}
        for n, expr in enumerate(du.dashboard_queries())
    ]
    rule_file = tmp_path / "dashboard_queries.yml"  # JSON is YAML
    rule_file.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool(promtool, "check", "rules", rule_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _rules_found(result.stdout) == len(rules)


# -- rule files -------------------------------------------------------------------------
def test_recording_rule_names_follow_convention() -> None:
    names = list(du.recording_rule_exprs())
    assert len(names) == len(set(names)), "duplicate recording rules"
    for name in names:
        assert RECORD_NAME.match(name), f"{name} is not level:metric:operations"
    for name in (
        "procman:child_restarts:rate5m",
        "procman:child_failures:rate5m",
        "procman:shutdown_duration_seconds:p99_5m",
    ):
        assert name in names


def test_alert_rules_are_complete() -> None:
    alerts = [r for r in du.parse_rules(du.ALERTS) if r["kind"] == "alert"]
    assert {a["name"] for a in alerts} == EXPECTED_ALERTS
    for alert in alerts:
        name = alert["name"]
        assert alert.get("severity") in SEVERITIES, name
        for annotation in ("summary", "description"):
            assert "$labels." in alert.get(annotation, ""), f"{name}: {annotation}"
        assert "threshold" in alert["description"], f"{name}: document the threshold"


def test_rule_unit_tests_cover_every_rule() -> None:
    text = du.RULES_TEST.read_text(encoding="utf-8")
    tested_alerts = set(re.findall(r"alertname:\s*(\S+)", text))
    assert tested_alerts >= EXPECTED_ALERTS
    tested_exprs = set(re.findall(r"-\s+expr:\s*(\S+)", text))
    assert set(du.recording_rule_exprs()) <= tested_exprs
    for alert in EXPECTED_ALERTS:  # firing at least once, and checked not firing
        firing = re.search(
            rf"alertname: {alert}\n\s+eval_time: \S+\n\s+exp_alerts:\n\s+- exp_labels:", text
        )
        quiet = re.search(rf"alertname: {alert}\n\s+eval_time: \S+\n\s+exp_alerts: \[\]", text)
        assert firing and quiet, alert


@pytest.mark.parametrize("path", [du.RECORDING, du.ALERTS], ids=lambda p: p.name)
def test_rules_read_only_known_metrics(path: Path) -> None:
    known = du.CONTRACT_METRICS | set(du.recording_rule_exprs())
    for rule in du.parse_rules(path):
        names = du.metric_names(rule["expr"])
        assert names, rule["name"]
        assert names <= known, f"{rule['name']}: unknown {names - known}"


# -- dashboard --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dashboard() -> dict:
    return du.load_dashboard()


def test_dashboard_metadata(dashboard: dict) -> None:
    assert dashboard["schemaVersion"] >= 41
    assert dashboard["uid"] == "procman-overview"
    assert dashboard["title"] == "procman supervisor"
    assert dashboard["tags"] == ["procman", "asyncio"]
    assert dashboard.get("id") is None, "exported dashboards must not pin a database id"


def test_dashboard_variables(dashboard: dict) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) >= {"datasource", "job", "instance", "supervisor"}

    datasource = variables["datasource"]
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"

    for name in ("job", "instance", "supervisor"):
        var = variables[name]
        assert var["type"] == "query", name
        assert var["datasource"]["uid"] == "${datasource}", name
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        assert query == var["definition"], name
        match = re.fullmatch(
            r"label_values\((procman_children|procman_child_starts_total)(\{.*\})?,\s*(\w+)\)",
            query,
        )
        assert match and match.group(3) == name, f"{name}: {query}"

    assert "$job" in variables["instance"]["definition"]
    assert "$instance" in variables["supervisor"]["definition"]
    assert variables["supervisor"]["multi"] is True
    assert variables["supervisor"]["includeAll"] is True


def test_dashboard_panels_are_documented(dashboard: dict) -> None:
    panels = du.dashboard_panels()
    assert len(panels) >= 10
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in panels:
        title = panel.get("title")
        assert title, f"panel {panel['id']} has no title"
        assert panel.get("description"), f"{title}: no description"
        assert panel.get("fieldConfig", {}).get("defaults", {}).get("unit"), f"{title}: no unit"
        assert panel.get("targets"), f"{title}: no query"
        assert panel["datasource"]["uid"] == "${datasource}", title
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["uid"] == "${datasource}"


def test_dashboard_has_required_panels(dashboard: dict) -> None:
    exprs = "\n".join(expr for _, _, expr in du.dashboard_targets())
    types = {p["title"]: p["type"] for p in du.dashboard_panels()}
    assert types["Children by state"] == "timeseries"
    by_state = next(p for p in du.dashboard_panels() if p["title"] == "Children by state")
    assert by_state["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    assert types["Version"] == "stat"
    for quantile in ("0.5", "0.9", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}," in exprs
    for fragment in (
        "sum by (state) (procman_children",
        "procman_child_starts_total",
        "sum by (outcome) (rate(procman_child_exits_total",
        "sum by (error_type) (rate(procman_child_failures_total",
        "sum by (supervisor, child) (rate(procman_child_restarts_total",
        "topk(",
        "procman_child_stop_timeouts_total",
        "sum by (result) (increase(procman_reloads_total",
        "procman_build_info",
        "rate(procman_child_ready_duration_seconds_bucket",
        "sum by (supervisor, strategy) (increase(procman_supervisor_restarts_total",
        "sum by (instance) (procman_children",
    ):
        assert fragment in exprs, fragment
    assert set(du.recording_rule_exprs()) & du.metric_names(exprs), "use the recording rules"


def test_every_contract_metric_is_shown_or_alerted_on() -> None:
    """Each metric family procman exports is read by a panel or a rule."""
    exprs = [expr for _, _, expr in du.dashboard_targets()]
    exprs += [rule["expr"] for path in (du.RECORDING, du.ALERTS) for rule in du.parse_rules(path)]

    def family(name: str) -> str:
        return re.sub(r"_(bucket|sum|count)$", "", name)

    used = {family(name) for expr in exprs for name in du.metric_names(expr)}
    unused = {family(name) for name in du.CONTRACT_METRICS} - used
    assert not unused, f"no panel or rule reads {sorted(unused)}"


def test_policy_panels(dashboard: dict) -> None:
    """Issue 11: time to ready (p50/p95) and restart decisions by strategy."""
    panels = {p["title"]: p for p in du.dashboard_panels()}
    ready = panels["Time to ready (p50 / p95)"]
    assert ready["fieldConfig"]["defaults"]["unit"] == "s"
    assert [t["expr"].split(",")[0] for t in ready["targets"]] == [
        "histogram_quantile(0.5",
        "histogram_quantile(0.95",
    ]
    for target in ready["targets"]:
        assert "procman_child_ready_duration_seconds_bucket" in target["expr"]
        assert "sum by (supervisor, le)" in target["expr"]
    (restarts,) = panels["Restarts by strategy"]["targets"]
    assert "{{strategy}}" in restarts["legendFormat"]
    assert du.metric_names(restarts["expr"]) == {"procman_supervisor_restarts_total"}


TARGETS = du.dashboard_targets()


@pytest.mark.parametrize(
    ("title", "ref", "expr"), TARGETS, ids=[f"{title}/{ref}" for title, ref, _ in TARGETS]
)
def test_dashboard_query(title: str, ref: str, expr: str) -> None:
    for var in ("$job", "$instance", "$supervisor"):
        assert var in expr, f"{title}/{ref}: no {var}"

    # Every range is the Grafana rate interval, and every rate/increase has one.
    ranges = re.findall(r"\[([^\]]*)\]", expr)
    assert all(r == "$__rate_interval" for r in ranges), f"{title}/{ref}: {ranges}"
    assert len(RANGE_FUNCTIONS.findall(expr)) <= len(ranges), f"{title}/{ref}"
    for match in RANGE_FUNCTIONS.finditer(expr):
        start = match.end() - 1
        end = du.skip_balanced(expr, start, "(", ")")
        assert expr[start:end].rstrip(") ").endswith("[$__rate_interval]"), f"{title}/{ref}"

    # Every selector is filtered and reads a contract metric or a recording rule.
    known = du.CONTRACT_METRICS | set(du.recording_rule_exprs())
    found = du.selectors(expr)
    assert found, f"{title}/{ref}: no selector"
    for name, matchers in found:
        assert name in known, f"{title}/{ref}: unknown metric {name!r}"
        assert matchers is not None, f"{title}/{ref}: {name} is not filtered"
        parsed = {label: (op, value) for label, op, value in MATCHER.findall(matchers)}
        for label, wanted in REQUIRED_MATCHERS.items():
            if label == "supervisor" and name in du.METRICS_WITHOUT_SUPERVISOR:
                continue
            assert parsed.get(label) == wanted, f"{title}/{ref}: {name} needs {label}{wanted}"


# -- helpers ----------------------------------------------------------------------------
def test_dashboard_queries_substitutes_variables() -> None:
    queries = du.dashboard_queries(
        variables={
            "job": "j",
            "instance": "i:1",
            "supervisor": "demo|demo/x",
            "rate_interval": "2m",
        }
    )
    assert len(queries) == len(du.dashboard_targets())
    for query in queries:
        assert "$" not in query
        assert 'job="j"' in query
        assert "[1m]" not in query
    assert any("[2m]" in q for q in queries)
    with pytest.raises(KeyError):
        du.substitute("rate(x[$nope])")


def test_selector_scanner() -> None:
    expr = (
        'sum by (le) (rate(a_total{x="}"}[5m] offset 1h)) / on (job) group_left(v) b'
        " + 1e3 * c:d:e offset -5m and topk(3, max without (y) (f)) > bool Inf"
    )
    assert du.selectors(expr) == [
        ("a_total", 'x="}"'),
        ("b", None),
        ("c:d:e", None),
        ("f", None),
    ]
    assert du.metric_names("histogram_quantile(0.9, sum(rate(h_bucket[$__rate_interval])))") == {
        "h_bucket"
    }
