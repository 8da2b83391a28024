"""A minimal HTTP/1.1 request reader and response writer for the metrics server.

Only what a scrape endpoint needs: one request per connection (the response
always says ``Connection: close``), request line and headers read with a size
limit, the body of the request ignored (the server discards a bounded amount
after answering, so the client still reads its status line). Anything
malformed gets a 400: a request line or header with a control character (CR,
LF, NUL, DEL, ...), a method or header name that is not an HTTP token, a
folded header line. Response headers are built only from the server's own
strings, and :func:`render_response` refuses a header value with a control
character, so client input can never split a response.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs

__all__ = [
    "MAX_HEAD",
    "BadRequest",
    "Request",
    "discard_input",
    "parse_head",
    "read_request",
    "render_response",
]

MAX_HEAD = 16 * 1024
"""The largest request line plus headers accepted (bytes)."""

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # every CTL but horizontal tab
_TARGET = re.compile(r"/[\x21-\x7e]*")


class BadRequest(Exception):
    """The request could not be parsed."""

    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed request head (header names lower-cased)."""

    method: str
    target: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> dict[str, list[str]]:
        """The query string, decoded (``name[]=a&name[]=b`` -> ``{"name[]": ["a", "b"]}``).

        Raises :class:`BadRequest` for more than 256 fields.
        """
        _, sep, query = self.target.partition("?")
        if not sep:
            return {}
        try:
            return parse_qs(query, max_num_fields=256)
        except ValueError as exc:  # too many fields
            raise BadRequest(HTTPStatus.BAD_REQUEST, "too many query parameters") from exc

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """Read one request head; None when the client closed before sending one."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise BadRequest(HTTPStatus.BAD_REQUEST, "incomplete request head") from exc
    except asyncio.LimitOverrunError as exc:
        raise BadRequest(
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large"
        ) from exc
    if len(head) > MAX_HEAD:
        raise BadRequest(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")
    return parse_head(head)


def parse_head(head: bytes) -> Request:
    """Parse a request head ending in CRLF CRLF; :class:`BadRequest` if malformed."""
    text = head.decode("latin-1")  # decodes every byte
    lines = text[: -len("\r\n\r\n")].split("\r\n")
    if any(_CONTROL.search(line) for line in lines):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "control character in request head")
    parts = lines[0].split(" ")
    if (
        len(parts) != 3
        or not _TOKEN.fullmatch(parts[0])
        or not _TARGET.fullmatch(parts[1])
        or parts[2] not in ("HTTP/1.0", "HTTP/1.1")
    ):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed header line")
        key = name.lower()
        value = value.strip(" \t")
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return Request(method=parts[0], target=parts[1], version=parts[2], headers=headers)


async def discard_input(reader: asyncio.StreamReader, limit: int) -> None:
    """Read and drop what the client still sends, until it closes or ``limit`` bytes.

    Closing a socket with unread input makes the kernel send a reset, which
    can destroy the response before the client reads it; draining first (after
    the response is written and the write side shut down) avoids that.
    """
    remaining = limit
    while remaining > 0:
        chunk = await reader.read(min(remaining, 64 * 1024))
        if not chunk:
            return
        remaining -= len(chunk)


def render_response(
    status: HTTPStatus,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
    *,
    head_only: bool = False,
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """The bytes of a complete ``Connection: close`` response.

    Raises ValueError for a header that is not printable ASCII (a bug in the
    caller: response headers never carry client input).
    """
    headers = (
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
        ("Cache-Control", "no-store"),
        *extra_headers,
    )
    lines = [f"HTTP/1.1 {status.value} {status.phrase}"]
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or not value.isascii() or _CONTROL.search(value):
            raise ValueError(f"refusing to send the response header {name!r}: {value!r}")
        lines.append(f"{name}: {value}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    return head if head_only else head + body
