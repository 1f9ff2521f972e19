"""A small, strict parser for the head of an HTTP/1.1 request (RFC 9112), and responses.

The endpoint answers three ``GET`` paths and nothing else, so the parser accepts only
what such a request needs and refuses the rest with the right status, before anything
else runs:

============================================== ======
what is wrong                                  status
============================================== ======
head larger than :data:`MAX_HEAD` bytes        431
more than :data:`MAX_HEADERS` header fields    431
malformed request line or header field,        400
obsolete line folding, bare CR or LF, control
characters, no ``Host`` in HTTP/1.1 (or two),
a body (``Content-Length`` above 0 or any
``Transfer-Encoding``), a target that is not
an absolute path
an HTTP version other than 1.0 and 1.1         505
============================================== ======

Example:
    >>> request = parse_head(b"GET /metrics?x=1 HTTP/1.1\\r\\nHost: w1:9100\\r\\n\\r\\n")
    >>> request.method, request.path, request.header("host")
    ('GET', '/metrics', 'w1:9100')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

MAX_HEAD: Final = 8192
"""Bytes a request head (request line and header fields) may take at most."""

MAX_HEADERS: Final = 64
"""Header fields a request may carry at most."""

# RFC 9110 §5.6.2: token = 1*tchar.
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# An origin-form target: an absolute path and an optional query, visible ASCII only.
_TARGET: Final = re.compile(rb"/[\x21-\x7e]*")
_VERSION: Final = re.compile(rb"HTTP/(\d)\.(\d)")
# A field value: visible characters, spaces and tabs, and obs-text (RFC 9110 §5.5).
_FIELD_VALUE: Final = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")


class BadRequest(Exception):
    """The request is refused with ``status``; the message says why (for the body)."""

    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed request head."""

    method: str
    target: str
    version: tuple[int, int]
    headers: tuple[tuple[str, str], ...]

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> str | None:
        """The value of header field ``name`` (case-insensitive), if present once or more."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None


def parse_head(head: bytes) -> Request:
    """Parse a request head that ends with its blank line (``\\r\\n\\r\\n``).

    Raises:
        BadRequest: the request is malformed or not one this endpoint accepts.

    Example:
        >>> parse_head(b"GET / HTTP/2.0\\r\\n\\r\\n")
        Traceback (most recent call last):
        ...
        runnel.adapters.http.request.BadRequest: HTTP/2.0 is not supported
    """
    if len(head) > MAX_HEAD:
        raise BadRequest(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")
    if not head.endswith(b"\r\n\r\n"):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "request head does not end with a blank line")
    lines = head[:-4].split(b"\r\n")
    for line in lines:
        if b"\r" in line or b"\n" in line:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "bare CR or LF in the request head")
    method, target, version = _request_line(lines[0])
    if len(lines) - 1 > MAX_HEADERS:
        raise BadRequest(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many header fields")
    headers = tuple(_field(line) for line in lines[1:])
    request = Request(method, target, version, headers)
    _check_framing(request)
    return request


def _request_line(line: bytes) -> tuple[str, str, tuple[int, int]]:
    parts = line.split(b" ")
    if len(parts) != 3:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed method")
    matched = _VERSION.fullmatch(version)
    if matched is None:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed HTTP version")
    major, minor = int(matched[1]), int(matched[2])
    if (major, minor) not in {(1, 0), (1, 1)}:
        raise BadRequest(
            HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"HTTP/{major}.{minor} is not supported"
        )
    if not _TARGET.fullmatch(target):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "the target must be an absolute path")
    return method.decode("ascii"), target.decode("ascii"), (major, minor)


def _field(line: bytes) -> tuple[str, str]:
    if line[:1] in (b" ", b"\t"):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "obsolete line folding is not accepted")
    name, colon, value = line.partition(b":")
    if not colon or not _TOKEN.fullmatch(name):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed header field")
    value = value.strip(b" \t")
    if not _FIELD_VALUE.fullmatch(value):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "control character in a header field")
    return name.decode("ascii").lower(), value.decode("latin-1")


def _check_framing(request: Request) -> None:
    hosts = [value for key, value in request.headers if key == "host"]
    if request.version == (1, 1) and len(hosts) != 1:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "an HTTP/1.1 request needs one Host field")
    if request.header("transfer-encoding") is not None:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "a request body is not accepted")
    lengths = {value for key, value in request.headers if key == "content-length"}
    if lengths and lengths != {"0"}:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "a request body is not accepted")


def response(
    status: HTTPStatus,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """A complete HTTP/1.1 response that closes the connection.

    Example:
        >>> response(HTTPStatus.OK, b"ok").split(b"\\r\\n")[0]
        b'HTTP/1.1 200 OK'
    """
    head = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-store",
        "Connection: close",
        *(f"{name}: {value}" for name, value in extra),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
