"""End to end: ``procman demo --otel otlp`` exports spans and logs to a real OTLP/HTTP receiver.

The receiver is a tiny ``http.server`` on 127.0.0.1 (ephemeral port) that
decodes the protobuf bodies with ``opentelemetry-proto``.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import require

ROOT = Path(__file__).resolve().parent.parent

try:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceRequest,
        ExportLogsServiceResponse,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    HAVE_PROTO = True
except ImportError:  # pragma: no cover
    HAVE_PROTO = False

pytestmark = pytest.mark.e2e


class Receiver:
    """Collects decoded OTLP export requests."""

    def __init__(self) -> None:
        self.traces: list[object] = []
        self.logs: list[object] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()


def make_handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            try:
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    response = ExportTraceServiceResponse().SerializeToString()
                    with receiver.lock:
                        receiver.traces.append(request)
                elif self.path == "/v1/logs":
                    logs = ExportLogsServiceRequest()
                    logs.ParseFromString(body)
                    response = ExportLogsServiceResponse().SerializeToString()
                    with receiver.lock:
                        receiver.logs.append(logs)
                else:
                    self.send_error(404)
                    return
            except Exception as exc:
                receiver.errors.append(repr(exc))
                self.send_error(400)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(response)))
            self.end_headers()
            self.wfile.write(response)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    require(HAVE_PROTO, "opentelemetry-proto is needed to decode OTLP")
    rec = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(rec))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def attrs_of(item: object) -> dict[str, object]:
    out: dict[str, object] = {}
    for kv in item.attributes:  # type: ignore[attr-defined]
        value = kv.value
        out[kv.key] = (
            getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None
        )
    return out


def test_demo_exports_spans_and_logs_over_otlp(receiver: tuple[Receiver, str]) -> None:
    rec, endpoint = receiver
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "procman-e2e",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_BLRP_SCHEDULE_DELAY": "200",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "5",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
    env.pop("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "procman",
            "demo",
            "--duration",
            "4",
            "--otel",
            "otlp",
            "--metrics-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert not rec.errors, rec.errors

    spans = []
    for request in rec.traces:
        for resource_spans in request.resource_spans:  # type: ignore[attr-defined]
            resource = attrs_of(resource_spans.resource)
            assert resource["service.name"] == "procman-e2e"
            for scope_spans in resource_spans.scope_spans:
                if scope_spans.scope.name == "procman":
                    assert scope_spans.scope.version
                spans.extend(scope_spans.spans)
    assert spans, "no span arrived"
    runs = [(s, attrs_of(s)) for s in spans if s.name == "procman.child.run"]
    run_paths = {f"{a['procman.supervisor.name']}/{a['procman.child.name']}" for _, a in runs}
    assert {
        "demo/worker-0",
        "demo/worker-1",
        "demo/worker-2",
        "demo/flaky",
        "demo/nested",
        "demo/nested/consumer-0",
        "demo/nested/consumer-1",
    } <= run_paths
    # The nested manager's children are children of its run span, in its trace.
    [(nested, _)] = [(s, a) for s, a in runs if a["procman.child.name"] == "nested"]
    consumers = [s for s, a in runs if a["procman.supervisor.name"] == "demo/nested"]
    assert {c.parent_span_id for c in consumers} == {nested.span_id}
    assert {c.trace_id for c in consumers} == {nested.trace_id}
    # The flaky worker failed (error status, error.type) and was restarted.
    flaky_runs = [(s, a) for s, a in runs if a["procman.child.name"] == "flaky"]
    failed = [(s, a) for s, a in flaky_runs if a["procman.child.exit_reason"] == "error"]
    assert failed, "the flaky worker should have failed within 4 s"
    assert all(a["error.type"] == "procman.demo.FlakyError" for _, a in failed)
    assert all(s.status.code == 2 for s, _ in failed)  # STATUS_CODE_ERROR
    restarts = [attrs_of(s) for s in spans if s.name == "procman.child.restart"]
    assert restarts and restarts[0]["procman.restart.attempt"] == 1
    # restarts: the flaky worker (RestartSupervisor) and the nested pool (ONE_FOR_ALL)
    assert {a["procman.child.name"] for a in restarts} <= {
        "flaky",
        "db",
        "consumer-0",
        "consumer-1",
    }
    # Shutdown spans for the root and the nested manager; nothing else reported errors.
    shutdowns = {
        attrs_of(s)["procman.supervisor.name"] for s in spans if s.name == "procman.shutdown"
    }
    assert shutdowns == {"demo", "demo/nested"}
    healthy = [a for _, a in runs if a["procman.child.name"] not in ("flaky", "consumer-1")]
    assert all(a["procman.child.exit_reason"] == "ok" for a in healthy)

    records = []
    for request in rec.logs:
        for resource_logs in request.resource_logs:  # type: ignore[attr-defined]
            for scope_logs in resource_logs.scope_logs:
                records.extend(scope_logs.log_records)
    assert records, "no log record arrived"
    by_event: dict[str, list[tuple[object, dict[str, object]]]] = {}
    for record in records:
        a = attrs_of(record)
        if "procman_event" in a:
            by_event.setdefault(str(a["procman_event"]), []).append((record, a))
    assert {"procman.child.failed", "procman.shutdown.requested"} <= set(by_event)
    # Each failure record carries the trace and span id of the failed run's span.
    run_ids = {(s.trace_id, s.span_id) for s, _ in failed}
    failure_ids = {
        (r.trace_id, r.span_id)  # type: ignore[attr-defined]
        for r, a in by_event["procman.child.failed"]
        if a["procman_child"] == "flaky"
    }
    assert failure_ids and failure_ids <= run_ids
    assert any(
        r.severity_text == "ERROR"  # type: ignore[attr-defined]
        for r, _ in by_event["procman.child.failed"]
    )


def test_unsupported_protocol_is_a_clear_error() -> None:
    env = {**os.environ, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "procman", "demo", "--duration", "1", "--otel", "otlp"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode != 0
    assert "http/protobuf" in proc.stderr and "'grpc'" in proc.stderr
