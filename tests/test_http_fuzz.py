"""Property-based fuzzing of MetricsServer's HTTP front end, over loopback.

Random bytes, random request heads (methods, targets, header sets with any
latin-1 character, bodies) and random early closes (after any prefix, with a
FIN or a reset) are sent to a real server running in a tree on its own event
loop thread. Every response must be a well-formed status line with printable
headers and a matching Content-Length -- or no response at all when the client
gave up first -- never a 500; nothing may be logged at ERROR or reach the
loop's exception handler; the tree keeps running and ``/healthz`` answers
after every example.

The default hypothesis profile runs 100 examples (about a second); run more with
``pytest --hypothesis-profile=long tests/test_http_fuzz.py``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from helpers import waiting_worker
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from procman import ManagerPhase, ProcessManager
from procman_metrics import MetricsServer, PrometheusMetrics

STATUS_LINE = re.compile(rb"HTTP/1\.1 ([1-5][0-9]{2}) [A-Za-z -]+")
HEADER_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+): ([\x20-\x7e]*)")


class _Errors(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            text += f" ({record.exc_info[1]!r})"
        self.sink.append(text)


@dataclass
class Served:
    port: int
    root: ProcessManager
    server: MetricsServer
    loop: asyncio.AbstractEventLoop
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    errors: list[str] = []
    handler = _Errors(errors)
    logger = logging.getLogger("procman")
    logger.addHandler(handler)
    started: concurrent.futures.Future[Served] = concurrent.futures.Future()
    outcome: concurrent.futures.Future[None] = concurrent.futures.Future()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, ctx: errors.append(str(ctx.get("message"))))
        metrics = PrometheusMetrics(CollectorRegistry())
        server = MetricsServer(port=0, metrics=metrics, request_timeout=1.0)
        root = (
            ProcessManager("fuzz", observers=[metrics]).insert(waiting_worker("w")).insert(server)
        )
        metrics.track(root)
        task = asyncio.create_task(root.process_start())
        port = await asyncio.wait_for(server.wait_bound(), 5)
        started.set_result(Served(port, root, server, loop, errors))
        await task

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            outcome.set_exception(exc)
            if not started.done():
                started.set_exception(exc)
        else:
            outcome.set_result(None)

    thread = threading.Thread(target=run, name="fuzzed-server", daemon=True)
    thread.start()
    try:
        served = started.result(10)
        yield served
        stop = asyncio.run_coroutine_threadsafe(
            served.root.process_handle().shutdown(), served.loop
        )
        stop.result(10)
        assert outcome.result(10) is None  # the tree ended cleanly
        thread.join(10)
        assert errors == []  # nothing reported while stopping either
    finally:
        logger.removeHandler(handler)


def exchange(port: int, data: bytes, mode: str) -> bytes | None:
    """Send ``data``; then close (FIN or reset) or read the whole answer. None: no read."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(data)
        except ConnectionError:
            return None  # the server answered and closed before taking everything
        if mode == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return None
        if mode == "close":
            return None
        if mode == "half-close":
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def check_response(payload: bytes) -> int | None:
    """The status of a well-formed response (None for an empty one, a plain close)."""
    if not payload:
        return None
    head, sep, body = payload.partition(b"\r\n\r\n")
    assert sep, f"no end of head in {payload[:200]!r}"
    status_line, *lines = head.split(b"\r\n")
    match = STATUS_LINE.fullmatch(status_line)
    assert match, f"malformed status line {status_line!r}"
    headers = {}
    for line in lines:
        header = HEADER_LINE.fullmatch(line)
        assert header, f"malformed header line {line!r}"
        headers[header[1].lower()] = header[2]
    status = int(match[1])
    assert status != 500, payload[:500]
    assert headers[b"connection"] == b"close"
    length = int(headers[b"content-length"])
    assert len(body) in (0, length)  # 0 for HEAD
    return status


def healthz(port: int) -> None:
    payload = exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "half-close")
    assert payload is not None and check_response(payload) == 200


# -- strategies ---------------------------------------------------------------------------
latin1 = st.characters(min_codepoint=0, max_codepoint=255)
methods = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "G ET", ""]) | (
    st.text(latin1, max_size=8)
)
targets = st.sampled_from(
    [
        "/metrics",
        "/healthz",
        "/readyz",
        "/tree",
        "/",
        "/nope",
        "/metrics?name[]=procman_build_info",
        "/metrics?name[]=%ff%00&name[]=",
        "/metrics?" + "&".join(["name[]=x"] * 300),
        "*",
    ]
) | st.text(latin1, max_size=40).map(lambda s: "/" + s)
versions = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "http/1.1", ""])
header_names = st.sampled_from(
    ["Accept", "Accept-Encoding", "Content-Length", "Host", "Transfer-Encoding", "X-Fuzz"]
) | st.text(latin1, max_size=12)
header_values = st.sampled_from(
    [
        "gzip",
        "gzip;q=0, *;q=0",
        "application/openmetrics-text; version=1.0.0",
        "application/openmetrics-text; version=abc",
        "application/openmetrics-text; version=1.0.0.\nSet-Cookie: x=1",
        "text/plain; version=1.0.0; escaping=allow-utf-8",
        "text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
        "chunked",
        "-1",
        "99999999999999999999",
    ]
) | st.text(latin1, max_size=60)
headers = st.lists(st.tuples(header_names, header_values), max_size=8)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    eol = draw(st.sampled_from(["\r\n", "\r\n", "\n", "\r"]))
    lines = [f"{draw(methods)} {draw(targets)} {draw(versions)}"]
    lines += [f"{name}: {value}" for name, value in draw(headers)]
    head = (eol.join(lines) + eol + eol).encode("latin-1")
    return head + draw(st.binary(max_size=4096))


@given(
    data=requests() | st.binary(max_size=2048),
    cut=st.none() | st.integers(min_value=0, max_value=5000),
    mode=st.sampled_from(["half-close", "half-close", "close", "reset"]),
)
def test_http_front_end_survives_anything(
    served: Served, data: bytes, cut: int | None, mode: str
) -> None:
    before = len(served.errors)
    sent = data if cut is None else data[:cut]
    payload = exchange(served.port, sent, mode)
    if payload is not None:
        check_response(payload)
    assert served.errors[before:] == []
    assert served.root.phase is ManagerPhase.RUNNING
    assert served.server.port == served.port
    healthz(served.port)


@given(
    method=st.sampled_from(["GET", "HEAD"]),
    target=st.sampled_from(["/metrics", "/healthz", "/readyz", "/tree", "/"]),
    fields=headers,
)
def test_well_formed_requests_with_random_headers(
    served: Served, method: str, target: str, fields: list[tuple[str, str]]
) -> None:
    before = len(served.errors)
    lines = [f"{method} {target} HTTP/1.1", *(f"{n}: {v}" for n, v in fields)]
    payload = exchange(served.port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), "read")
    assert payload is not None
    status = check_response(payload)
    assert status in (200, 400, 503), status
    assert served.errors[before:] == []
