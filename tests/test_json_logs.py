"""JSON log lines: one object per line, procman_* fields, the traceback as a field, trace ids."""

from __future__ import annotations

import io
import json
import logging
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import test_cli_run
from opentelemetry.sdk.trace import TracerProvider
from test_cli_run import Cli, run_to_end

from procman.observe.jsonlog import json_formatter

app_dir = test_cli_run.app_dir  # the CLI fixtures
cli = test_cli_run.cli


def _emit(record_fn: Any) -> list[str]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("procman.test.jsonlog")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        record_fn(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue().splitlines()


def test_a_record_is_one_json_object_with_the_fields() -> None:
    [line] = _emit(
        lambda log: log.info(
            "child %s\nstarted", "w", extra={"procman_event": "procman.child.started"}
        )
    )
    record = json.loads(line)
    assert list(record)[:4] == ["timestamp", "level", "logger", "message"]
    assert record["level"] == "INFO"
    assert record["logger"] == "procman.test.jsonlog"
    assert record["message"] == "child w\nstarted"
    assert record["procman_event"] == "procman.child.started"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00", record["timestamp"])
    assert "trace_id" not in record


def test_the_traceback_is_a_field_on_the_same_line() -> None:
    def fail(log: logging.Logger) -> None:
        try:
            raise KeyError("missing")
        except KeyError:
            log.exception("it failed")

    [line] = _emit(fail)
    record = json.loads(line)
    assert record["level"] == "ERROR"
    assert record["exception"].startswith("Traceback (most recent call last):")
    assert record["exception"].rstrip().endswith("KeyError: 'missing'")


def test_trace_and_span_ids_when_a_span_is_current() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        [line] = _emit(lambda log: log.warning("inside"))
        ctx = span.get_span_context()
    record = json.loads(line)
    assert record["trace_id"] == format(ctx.trace_id, "032x")
    assert record["span_id"] == format(ctx.span_id, "016x")


def test_without_the_library_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pythonjsonlogger.json", None)
    with pytest.raises(ImportError, match=r"pip install 'procman\[json\]'"):
        json_formatter()


# -- the CLI ------------------------------------------------------------------------------------


def records(stderr: str) -> list[dict[str, Any]]:
    lines = stderr.splitlines()
    assert lines, "no log line"
    return [json.loads(line) for line in lines]  # every line is one JSON object


def test_cli_failure_in_json(cli: type[Cli]) -> None:
    proc = run_to_end(cli, "cliapp:failing_tree", "--log-format", "json")
    assert proc.proc.returncode == 1, proc.stderr
    recs = records(proc.stderr)
    with_traceback = [r for r in recs if "exception" in r]
    assert len(with_traceback) == 1
    failed = with_traceback[0]
    assert failed["procman_event"] == "procman.child.failed"
    assert failed["procman_supervisor"] == "app/nested"
    assert failed["procman_child"] == "bad"
    assert "RuntimeError: boom in child" in failed["exception"]
    [final] = [r for r in recs if r.get("procman_event") == "procman.run.failed"]
    assert final["level"] == "ERROR" and final["procman_exit_status"] == 1
    [report] = [r for r in recs if r.get("procman_event") == "procman.exit_report"]
    by_path = {c["path"]: c for c in report["procman_report"]}
    assert by_path["app/nested/bad"]["state"] == "failed"
    assert by_path["app/nested/bad"]["last_error"] == "RuntimeError: boom in child"
    assert by_path["app/nested/fine"]["state"] == "stopped"
    assert set(by_path["app/nested"]) == {"path", "state", "restarts", "run_time", "last_error"}


def test_cli_signal_in_json_from_the_environment(cli: type[Cli]) -> None:
    proc = cli("cliapp:manager", env={"PROCMAN_LOG_FORMAT": "json"})
    proc.wait_for('"app: running"')
    proc.signal(signal.SIGTERM)
    assert proc.finish() == 143, proc.stderr
    recs = records(proc.stderr)
    [stopped] = [r for r in recs if r.get("procman_event") == "procman.run.signalled"]
    assert stopped["procman_exit_status"] == 143
    assert not any("exception" in r for r in recs)


def test_cli_trace_ids_in_json(cli: type[Cli]) -> None:
    proc = run_to_end(cli, "cliapp:finite_tree", "--log-format", "json", "--otel", "console")
    assert proc.proc.returncode == 0, proc.stderr
    running = [r for r in records(proc.stderr) if r["message"] == "app: running"]
    assert len(running) == 2
    for rec in running:  # logged inside each child's run span
        assert re.fullmatch(r"[0-9a-f]{32}", rec["trace_id"])
        assert re.fullmatch(r"[0-9a-f]{16}", rec["span_id"])
    assert running[0]["span_id"] != running[1]["span_id"]


def test_cli_without_the_library_names_the_extra(app_dir: Path) -> None:
    hide = (
        "import sys; sys.modules['pythonjsonlogger'] = None; from procman.cli import main; "
        "sys.exit(main(['run', 'cliapp:finite_tree', '--log-format', 'json']))"
    )
    proc = Cli(cwd=app_dir, command=[sys.executable, "-c", hide])
    assert proc.finish() == 2, proc.stderr
    assert "pip install 'procman[json]'" in proc.stderr
    assert "Traceback" not in proc.stderr
