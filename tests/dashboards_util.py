"""Helpers to read the Grafana dashboard and Prometheus rules in ``dashboards/``.

Used by ``tests/test_dashboards.py`` (static checks) and meant for end-to-end
tests that run every dashboard query and rule expression against a real
Prometheus::

    for expr in dashboard_queries(variables={"job": "procman", "__rate_interval": "30s"}):
        ...  # GET /api/v1/query?query=expr
    for name, expr in recording_rule_exprs().items():
        ...

No third-party dependency: the rule files are read with a small parser that
only understands their layout (``- record:``/``- alert:`` entries whose keys
are plain scalars or ``>``/``|`` block scalars); the tests cross-check it
against ``promtool``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "ALERTS",
    "CONTRACT_METRICS",
    "DASHBOARD",
    "DASHBOARDS_DIR",
    "DEFAULT_VARIABLES",
    "METRICS_WITHOUT_SUPERVISOR",
    "PROMTOOL_MISSING",
    "RECORDING",
    "RULES_TEST",
    "Selector",
    "alert_rule_exprs",
    "dashboard_panels",
    "dashboard_queries",
    "dashboard_targets",
    "find_promtool",
    "in_ci",
    "load_dashboard",
    "metric_names",
    "parse_rules",
    "recording_rule_exprs",
    "selectors",
    "skip_balanced",
    "substitute",
]

REPO = Path(__file__).resolve().parents[1]
DASHBOARDS_DIR = REPO / "dashboards"
DASHBOARD = DASHBOARDS_DIR / "procman.json"
RECORDING = DASHBOARDS_DIR / "recording.yml"
ALERTS = DASHBOARDS_DIR / "alerts.yml"
RULES_TEST = DASHBOARDS_DIR / "tests" / "alerts_test.yml"

#: Metric names exported by procman (the fixed contract), histogram series expanded.
CONTRACT_METRICS: frozenset[str] = frozenset(
    {
        "procman_children",
        "procman_child_starts_total",
        "procman_child_exits_total",
        "procman_child_failures_total",
        "procman_child_restarts_total",
        "procman_child_stop_timeouts_total",
        "procman_child_last_start_timestamp_seconds",
        "procman_shutdown_duration_seconds_bucket",
        "procman_shutdown_duration_seconds_sum",
        "procman_shutdown_duration_seconds_count",
        "procman_reloads_total",
        "procman_build_info",
        # Supervision policies (issue 11).
        "procman_child_ready_duration_seconds_bucket",
        "procman_child_ready_duration_seconds_sum",
        "procman_child_ready_duration_seconds_count",
        "procman_supervisor_restarts_total",
    }
)

#: Contract metrics that carry no ``supervisor`` label.
METRICS_WITHOUT_SUPERVISOR: frozenset[str] = frozenset({"procman_build_info"})

#: Values used for Grafana variables when none are given.
DEFAULT_VARIABLES: Mapping[str, str] = {
    "job": "procman",
    "instance": ".*",
    "supervisor": ".*",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}


# -- tools ----------------------------------------------------------------------------
PROMTOOL_MISSING = "promtool not found (apt-get install prometheus, or set PROMTOOL)"


def in_ci() -> bool:
    """``CI`` is set to a true value: a missing tool is a failure there, not a skip."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def find_promtool() -> str | None:
    """``$PROMTOOL``, else ``promtool`` on ``PATH``, else ``/usr/bin/promtool``; None if absent."""
    path = os.environ.get("PROMTOOL") or shutil.which("promtool") or "/usr/bin/promtool"
    return path if os.access(path, os.X_OK) else None


# -- dashboard --------------------------------------------------------------------------
def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    """The dashboard JSON as a dict."""
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return data


def dashboard_panels(path: Path = DASHBOARD) -> list[dict[str, Any]]:
    """Every panel, including panels nested in collapsed rows."""
    out: list[dict[str, Any]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            out.append(panel)
            walk(panel.get("panels", []))

    walk(load_dashboard(path).get("panels", []))
    return out


def dashboard_targets(path: Path = DASHBOARD) -> list[tuple[str, str, str]]:
    """``(panel title, refId, raw expr)`` for every Prometheus target, variables untouched."""
    return [
        (panel.get("title", ""), target.get("refId", ""), target["expr"])
        for panel in dashboard_panels(path)
        for target in panel.get("targets", [])
        if "expr" in target
    ]


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def substitute(expr: str, variables: Mapping[str, str] | None = None) -> str:
    """Replace Grafana variables (``$job``, ``${job}``, ``[[job]]``) in ``expr``.

    ``variables`` maps variable names without ``$`` (``job``, ``instance``,
    ``supervisor``, ``__rate_interval``; ``rate_interval`` is accepted as an
    alias) to values; it is merged over :data:`DEFAULT_VARIABLES`. Raises
    :class:`KeyError` for a variable with no value, so no ``$`` ever reaches
    Prometheus.
    """
    values = dict(DEFAULT_VARIABLES)
    if variables:
        values.update(variables)
        if "rate_interval" in variables and "__rate_interval" not in variables:
            values["__rate_interval"] = variables["rate_interval"]

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def dashboard_queries(
    path: Path = DASHBOARD, variables: Mapping[str, str] | None = None
) -> list[str]:
    """Every panel query of the dashboard, variables substituted (see :func:`substitute`)."""
    return [substitute(expr, variables) for _, _, expr in dashboard_targets(path)]


# -- rule files -------------------------------------------------------------------------
_RULE_START = re.compile(r"^(\s*)-\s+(record|alert):\s*(.*?)\s*$")
_KEY = re.compile(r"^(\s*)([A-Za-z_][\w-]*):(?:\s+(.*?))?\s*$")


def _scalar(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        inner = value[1:-1]
        return inner.replace("''", "'") if value[0] == "'" else inner.replace('\\"', '"')
    return re.sub(r"\s+#.*$", "", value)


def parse_rules(path: Path) -> list[dict[str, str]]:
    """The rules of a Prometheus rule file, flattened.

    Each rule is a dict with ``kind`` (``record``/``alert``), ``name`` and every
    scalar key found under it, nested keys flattened (``expr``, ``for``,
    ``severity``, ``summary``, ``description``...). Block scalars are returned
    with their lines joined by newlines (whitespace is insignificant in PromQL).
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    rules: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    rule_indent = -1
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        start = _RULE_START.match(line)
        if start:
            rule_indent = len(start.group(1))
            current = {"kind": start.group(2), "name": _scalar(start.group(3))}
            rules.append(current)
            continue
        if current is None:
            continue
        if indent <= rule_indent:  # left the rule (next group, next list...)
            current = None
            continue
        key = _KEY.match(line)
        if not key:
            continue
        name, value = key.group(2), key.group(3) or ""
        if value[:1] in (">", "|"):
            block: list[str] = []
            while i < len(lines) and (
                not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
            ):
                if lines[i].strip():
                    block.append(lines[i].strip())
                i += 1
            joiner = " " if value[0] == ">" and name != "expr" else "\n"
            current[name] = joiner.join(block)
        elif value:
            current[name] = _scalar(value)
    return rules


def recording_rule_exprs(path: Path = RECORDING) -> dict[str, str]:
    """``{record name: expr}`` for every recording rule, in file order."""
    return {r["name"]: r["expr"] for r in parse_rules(path) if r["kind"] == "record"}


def alert_rule_exprs(path: Path = ALERTS) -> list[tuple[str, str]]:
    """``(alert name, expr)`` for every alerting rule (a name may repeat)."""
    return [(r["name"], r["expr"]) for r in parse_rules(path) if r["kind"] == "alert"]


# -- PromQL scanning --------------------------------------------------------------------
Selector = tuple[str, str | None]

_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "start", "end"}
)
_AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values"}
    | {"bottomk", "topk", "quantile", "limitk", "limit_ratio"}
)
_GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_IDENT = re.compile(r"[A-Za-z_:][\w:]*")
_DOLLAR = re.compile(r"\$(\{[^}]*\}|\w+)")
_NUMBER = re.compile(r"[\w.]+")


def _skip_string(expr: str, i: int) -> int:
    """Index just past the string literal starting at ``expr[i]``."""
    quote = expr[i]
    i += 1
    while i < len(expr) and expr[i] != quote:
        i += 2 if expr[i] == "\\" and quote != "`" else 1
    return i + 1


def skip_balanced(expr: str, i: int, open_: str, close: str) -> int:
    """Index just past the bracket that closes the one at ``expr[i]``."""
    depth = 0
    while i < len(expr):
        char = expr[i]
        if char in "\"'`":
            i = _skip_string(expr, i)
            continue
        if char == open_:
            depth += 1
        elif char == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError(f"unbalanced {open_!r} in {expr!r}")


def selectors(expr: str) -> list[Selector]:
    """The vector selectors of a PromQL ``expr``: ``(metric name, matchers or None)``.

    ``matchers`` is the text between the braces (``None`` for a bare name).
    Function names, keywords, grouping label lists, strings, ranges and Grafana
    variables are skipped.
    """
    out: list[Selector] = []
    i = 0
    while i < len(expr):
        char = expr[i]
        if char in "\"'`":
            i = _skip_string(expr, i)
        elif char == "#":
            newline = expr.find("\n", i)
            i = len(expr) if newline < 0 else newline
        elif char == "[":
            i = skip_balanced(expr, i, "[", "]")
        elif char == "$":
            match = _DOLLAR.match(expr, i)
            i = match.end() if match else i + 1
        elif char.isdigit() or (char == "." and expr[i + 1 : i + 2].isdigit()):
            match = _NUMBER.match(expr, i)
            assert match is not None
            i = match.end()
        elif char == "{":  # selector without a metric name
            end = skip_balanced(expr, i, "{", "}")
            out.append(("", expr[i + 1 : end - 1]))
            i = end
        elif _IDENT.match(expr, i):
            match = _IDENT.match(expr, i)
            assert match is not None
            name, i = match.group(0), match.end()
            j = i
            while j < len(expr) and expr[j].isspace():
                j += 1
            nxt = expr[j : j + 1]
            if name.lower() in _GROUPING:
                if nxt == "(":
                    i = skip_balanced(expr, j, "(", ")")
            elif nxt == "(" or name.lower() in _KEYWORDS | _AGGREGATIONS:
                pass  # function call, aggregation (``sum by (...) (...)``) or keyword
            elif nxt == "{":
                end = skip_balanced(expr, j, "{", "}")
                out.append((name, expr[j + 1 : end - 1]))
                i = end
            else:
                out.append((name, None))
        else:
            i += 1
    return out


def metric_names(expr: str) -> set[str]:
    """The metric names (including recording rule names) an ``expr`` reads."""
    return {name for name, _ in selectors(expr) if name}
