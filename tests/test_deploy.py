"""Checks of the deployment examples in ``deploy/``.

* Kubernetes: every built-in resource is validated with ``kubernetes-validate``
  (schemas bundled with the package, so offline; strict mode, rejecting unknown
  fields; a pinned Kubernetes version). The Prometheus Operator resources
  (PodMonitor, PrometheusRule) are not in those schemas: their structure is
  checked here against the operator's documented fields. The PrometheusRule must
  be what ``deploy/kubernetes/generate_rules.py`` makes of ``dashboards/``, and the
  rules inside it pass ``promtool check rules`` and the dashboards' rule unit tests.
* systemd: the unit passes ``systemd-analyze verify`` where systemd-analyze
  exists, and a structural check everywhere.

Without promtool the promtool tests are skipped locally and fail when ``CI`` is set.
"""

from __future__ import annotations

import configparser
import copy
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import dashboards_util as du  # tests/ is on sys.path (rootdir-relative, no __init__.py)
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]

DEPLOY = du.REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
GENERATOR = KUBERNETES / "generate_rules.py"
PROMETHEUS_RULE = KUBERNETES / "prometheusrule.yaml"
SYSTEMD_UNIT = DEPLOY / "systemd" / "procman-app.service"
README = du.REPO / "README.md"

#: The Kubernetes version the built-in resources are validated against (pinned so a
#: new kubernetes-validate release cannot change the verdict; the manifests use no
#: field newer than 1.25).
KUBERNETES_VERSION = "1.34.0"
BUILTIN_KINDS = {"Deployment", "Service", "PodDisruptionBudget"}
OPERATOR_KINDS = {"PodMonitor", "PrometheusRule"}

#: Seconds between procman's grace period and the SIGKILL that follows it (the
#: kubelet's terminationGracePeriodSeconds, systemd's TimeoutStopSec), at least.
MIN_STOP_MARGIN = 5

METRICS_PORT = 9464
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")  # Prometheus duration

# Documented fields (Prometheus Operator API reference, monitoring.coreos.com/v1).
PODMONITOR_SPEC_FIELDS = {
    "jobLabel",
    "podTargetLabels",
    "podMetricsEndpoints",
    "selector",
    "selectorMechanism",
    "namespaceSelector",
    "sampleLimit",
    "targetLimit",
    "labelLimit",
    "labelNameLengthLimit",
    "labelValueLengthLimit",
    "keepDroppedTargets",
    "attachMetadata",
    "scrapeClass",
    "scrapeProtocols",
    "fallbackScrapeProtocol",
    "bodySizeLimit",
    "nativeHistogramBucketLimit",
    "nativeHistogramMinBucketFactor",
    "scrapeClassicHistograms",
    "convertClassicHistogramsToNHCB",
}
PODMETRICSENDPOINT_FIELDS = {
    "port",
    "portNumber",
    "targetPort",
    "path",
    "scheme",
    "params",
    "interval",
    "scrapeTimeout",
    "honorLabels",
    "honorTimestamps",
    "trackTimestampsStaleness",
    "metricRelabelings",
    "relabelings",
    "filterRunning",
    "followRedirects",
    "enableHttp2",
    "proxyUrl",
    "noProxy",
    "proxyFromEnvironment",
    "proxyConnectHeader",
    "basicAuth",
    "bearerTokenSecret",
    "authorization",
    "oauth2",
    "tlsConfig",
}
RELABEL_FIELDS = {
    "sourceLabels",
    "separator",
    "targetLabel",
    "regex",
    "modulus",
    "replacement",
    "action",
}
RULE_GROUP_FIELDS = {
    "name",
    "interval",
    "rules",
    "limit",
    "partial_response_strategy",
    "query_offset",
    "labels",
}
RULE_FIELDS = {"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"}


# -- helpers ----------------------------------------------------------------------------
def load_documents(path: Path) -> list[dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    assert all(isinstance(doc, dict) for doc in docs), path
    return docs


def manifests() -> dict[str, list[dict[str, Any]]]:
    """``{file name: documents}`` for every YAML file in deploy/kubernetes/."""
    return {path.name: load_documents(path) for path in sorted(KUBERNETES.glob("*.yaml"))}


def resources() -> Iterator[dict[str, Any]]:
    for name, docs in manifests().items():
        if name != "kustomization.yaml":
            yield from docs


def only(kind: str) -> dict[str, Any]:
    found = [doc for doc in resources() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container() -> dict[str, Any]:
    containers = only("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def flag(args: list[str], name: str) -> str:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in an argument list."""
    for i, arg in enumerate(args):
        if arg == name:
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{name} not in {args}")


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_rules", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels", "matchExpressions"}
    assert "matchExpressions" not in selector, "keep the examples' selectors simple"
    match_labels: dict[str, str] = selector["matchLabels"]
    return bool(match_labels) and match_labels.items() <= labels.items()


def pod_labels() -> dict[str, str]:
    labels: dict[str, str] = only("Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels


def container_ports() -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in container()["ports"]}


# -- Kubernetes: built-in resources -----------------------------------------------------
def test_every_manifest_is_known() -> None:
    kinds = [doc["kind"] for doc in resources()]
    assert set(kinds) == BUILTIN_KINDS | OPERATOR_KINDS
    for doc in resources():
        assert doc["metadata"]["name"], doc["kind"]
        assert "namespace" not in doc["metadata"], "let kubectl -n / kustomize choose"
    # `kubectl apply -k deploy/kubernetes/` applies every file.
    (kustomization,) = manifests()["kustomization.yaml"]
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    files = {name for name in manifests() if name != "kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)


BUILTINS = [doc for doc in resources() if doc["kind"] in BUILTIN_KINDS]


@pytest.mark.parametrize("resource", BUILTINS, ids=[doc["kind"] for doc in BUILTINS])
def test_builtin_resources_pass_kubernetes_validate(resource: dict[str, Any]) -> None:
    version = kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    assert version == KUBERNETES_VERSION.rsplit(".", 1)[0]


def test_kubernetes_validate_strict_mode_rejects_unknown_fields() -> None:
    deployment = copy.deepcopy(only("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="livenessprobe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    service = copy.deepcopy(only("Service"))
    service["spec"]["ports"][0]["port"] = "metrics"  # a Service port must be a number
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)


def test_kubernetes_validate_command_line() -> None:
    """The command users would run, on every file with built-in resources."""
    files = [
        str(KUBERNETES / name)
        for name, docs in manifests().items()
        if any(doc.get("kind") in BUILTIN_KINDS for doc in docs)
    ]
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", KUBERNETES_VERSION, *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(BUILTINS), result.stdout


def test_deployment_runs_procman() -> None:
    app = container()
    argv = app["command"] + app["args"]
    assert argv[:3] == ["procman", "run", "myapp.main:root"]
    assert flag(argv, "--metrics-port") == str(METRICS_PORT)
    assert flag(argv, "--metrics-host") == "0.0.0.0"  # the kubelet probes the pod IP
    assert container_ports() == {"metrics": METRICS_PORT}


def test_deployment_probes() -> None:
    app = container()
    probes = {
        name: app[name]["httpGet"] for name in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    assert probes["livenessProbe"] == {"path": "/healthz", "port": "metrics"}
    assert probes["readinessProbe"] == {"path": "/readyz", "port": "metrics"}
    assert probes["startupProbe"]["path"] == "/healthz"
    # A pod that starts shutting down is out of the endpoints at its first failed probe.
    assert app["readinessProbe"]["failureThreshold"] == 1


def test_termination_grace_period_exceeds_procman_grace() -> None:
    app = container()
    grace = float(flag(app["args"], "--grace"))
    termination = only("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert termination >= grace + MIN_STOP_MARGIN, (grace, termination)
    # The comment explaining the margin, and the README, name these numbers.
    text = (KUBERNETES / "deployment.yaml").read_text(encoding="utf-8")
    assert f"--grace {grace:g} and terminationGracePeriodSeconds {termination}" in text
    readme = README.read_text(encoding="utf-8")
    assert f"terminationGracePeriodSeconds: {termination}" in readme
    assert f"--grace {grace:g}" in readme


def test_deployment_is_locked_down() -> None:
    pod = only("Deployment")["spec"]["template"]["spec"]
    app = container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = app["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert not app["image"].endswith(":latest")
    for kind in ("requests", "limits"):
        assert set(app["resources"][kind]) == {"cpu", "memory"}, kind


def test_service_and_pdb_select_the_pods() -> None:
    labels = pod_labels()
    deployment = only("Deployment")
    assert matches(deployment["spec"]["selector"], labels)
    service = only("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in container_ports(), port
    assert matches(only("PodDisruptionBudget")["spec"]["selector"], labels)


# -- Kubernetes: Prometheus Operator resources ------------------------------------------
def test_podmonitor_structure() -> None:
    monitor = only("PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    spec = monitor["spec"]
    assert set(spec) <= PODMONITOR_SPEC_FIELDS, set(spec) - PODMONITOR_SPEC_FIELDS
    assert matches(spec["selector"], pod_labels())
    # job=<value of this pod label>: a stable job name for the dashboard's variable.
    assert spec["jobLabel"] in pod_labels()
    endpoints = spec["podMetricsEndpoints"]
    assert endpoints
    for endpoint in endpoints:
        assert set(endpoint) <= PODMETRICSENDPOINT_FIELDS, endpoint
        assert endpoint["port"] in container_ports()
        assert endpoint["path"] == "/metrics"
        for key in ("interval", "scrapeTimeout"):
            assert DURATION.match(endpoint[key]), endpoint[key]
        for relabel in endpoint.get("relabelings", []):
            assert set(relabel) <= RELABEL_FIELDS, relabel
    # One readable instance per replica: the pod name.
    relabelings = endpoints[0]["relabelings"]
    assert {
        "sourceLabels": ["__meta_kubernetes_pod_name"],
        "targetLabel": "instance",
        "action": "replace",
    } in relabelings


def test_prometheusrule_structure() -> None:
    rule = only("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule["spec"]) == {"groups"}
    groups = rule["spec"]["groups"]
    assert groups
    for group in groups:
        assert set(group) <= RULE_GROUP_FIELDS, group.keys()
        assert isinstance(group["name"], str) and group["rules"], group
        for entry in group["rules"]:
            assert set(entry) <= RULE_FIELDS, entry.keys()
            assert ("record" in entry) != ("alert" in entry), entry
            assert isinstance(entry["expr"], str) and entry["expr"].strip(), entry
            for key in ("for", "keep_firing_for"):
                if key in entry:
                    assert DURATION.match(entry[key]), entry
            for key in ("labels", "annotations"):
                mapping = entry.get(key, {})
                assert all(isinstance(v, str) for v in mapping.values()), entry
            if "record" in entry:
                assert "annotations" not in entry and "for" not in entry, entry


def test_prometheusrule_is_generated_from_dashboards() -> None:
    generator = load_generator()
    committed = PROMETHEUS_RULE.read_text(encoding="utf-8")
    assert committed == generator.render(), (
        "deploy/kubernetes/prometheusrule.yaml drifted from dashboards/: "
        "run python deploy/kubernetes/generate_rules.py"
    )
    # The same groups, rules and fields as the dashboards files, in order.
    groups = [
        group
        for path in (du.RECORDING, du.ALERTS)
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    ]
    assert only("PrometheusRule")["spec"]["groups"] == groups


def test_generator_check_flags_drift(tmp_path: Path) -> None:
    def check(output: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(GENERATOR), "--check", "--output", str(output)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert check(PROMETHEUS_RULE).returncode == 0
    stale = tmp_path / "prometheusrule.yaml"
    stale.write_text(PROMETHEUS_RULE.read_text(encoding="utf-8").replace("for: 5m", "for: 6m"))
    result = check(stale)
    assert result.returncode == 1
    assert "out of date" in result.stderr
    # Without --check it rewrites the file.
    subprocess.run([sys.executable, str(GENERATOR), "--output", str(stale)], check=True)
    assert check(stale).returncode == 0


@pytest.fixture(scope="module")
def promtool() -> str:
    path = du.find_promtool()
    if path is None:
        if du.in_ci():
            pytest.fail(du.PROMTOOL_MISSING + "; it is required when CI is set")
        pytest.skip(du.PROMTOOL_MISSING)
    return path


@pytest.fixture
def extracted_rules(tmp_path: Path) -> Path:
    """The rule groups of the PrometheusRule as a Prometheus rule file (JSON is YAML)."""
    path = tmp_path / "prometheusrule-rules.yml"
    path.write_text(json.dumps({"groups": only("PrometheusRule")["spec"]["groups"]}))
    return path


def test_prometheusrule_rules_pass_promtool_check(promtool: str, extracted_rules: Path) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(extracted_rules)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"SUCCESS: (\d+) rules found", result.stdout)
    assert found, result.stdout
    expected = len(du.parse_rules(du.RECORDING)) + len(du.parse_rules(du.ALERTS))
    assert int(found.group(1)) == expected


def test_prometheusrule_rules_pass_the_rule_unit_tests(
    promtool: str, extracted_rules: Path
) -> None:
    """dashboards/tests/alerts_test.yml, run against the rules of the PrometheusRule."""
    unit_tests = yaml.safe_load(du.RULES_TEST.read_text(encoding="utf-8"))
    unit_tests["rule_files"] = [extracted_rules.name]
    test_file = extracted_rules.with_name("prometheusrule_test.yml")
    test_file.write_text(json.dumps(unit_tests))
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# -- systemd ----------------------------------------------------------------------------
def read_unit(path: Path = SYSTEMD_UNIT) -> configparser.ConfigParser:
    """The unit as INI (systemd allows repeated keys: the last one wins here)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    parser.read_string(text, source=str(path))
    return parser


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|sec|min)?", value.strip())
    assert match, value
    return float(match.group(1)) * (60 if match.group(2) == "min" else 1)


def test_systemd_unit_structure() -> None:
    unit = read_unit()
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"  # only procman may send READY=1
    assert service["KillSignal"] == "SIGTERM"
    assert service["KillMode"] == "mixed"  # procman stops its own children
    assert service["Restart"] == "on-failure"

    argv = service["ExecStart"].split()
    assert Path(argv[0]).name == "procman" and argv[1] == "run"
    assert re.fullmatch(r"[\w.]+:\w+", argv[2]), argv[2]
    grace = float(flag(argv, "--grace"))
    stop_timeout = seconds(service["TimeoutStopSec"])
    assert stop_timeout >= grace + MIN_STOP_MARGIN, (grace, stop_timeout)
    text = SYSTEMD_UNIT.read_text(encoding="utf-8")
    assert f"(--grace {grace:g}) + {stop_timeout - grace:g} s margin" in text

    # 0 clean, 1 failure (restart), 2 unusable target (no restart), 128+N signal N.
    success = set(service["SuccessExitStatus"].split())
    prevent = set(service["RestartPreventExitStatus"].split())
    assert success == {"130", "143"}  # stopped by SIGINT / SIGTERM
    assert prevent == {"2"}
    assert "ExecReload" in service and "-HUP" in service["ExecReload"]

    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "DynamicUser": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == value, key
    # sd_notify talks over an AF_UNIX socket.
    assert "AF_UNIX" in service["RestrictAddressFamilies"].split()
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd's own parser accepts every line (unknown keys would be warnings).

    verify also requires ExecStart's program to exist, so the copy checked here
    points at this environment's procman script; nothing else changes.
    """
    text = SYSTEMD_UNIT.read_text(encoding="utf-8")
    program = read_unit()["Service"]["ExecStart"].split()[0]
    procman = Path(sys.executable).with_name("procman")
    assert procman.exists(), procman
    assert text.count(program) == 1
    unit = tmp_path / SYSTEMD_UNIT.name
    unit.write_text(text.replace(program, str(procman)), encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == "", result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify_reports_mistakes(tmp_path: Path) -> None:
    """The check above would notice a misspelt key or a missing program."""
    unit = tmp_path / SYSTEMD_UNIT.name
    text = SYSTEMD_UNIT.read_text(encoding="utf-8")
    unit.write_text(text.replace("KillMode=mixed", "KilMode=mixed"), encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert "Unknown key 'KilMode'" in output, output
    assert "is not executable" in output, output  # /opt/myapp/... does not exist here
    assert result.returncode != 0
