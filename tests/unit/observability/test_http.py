"""The HTTP endpoint: the strict request parser, and a real server on a loopback port."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus

import pytest

from runnel.adapters.http.endpoint import HttpEndpoint
from runnel.adapters.http.request import MAX_HEAD, MAX_HEADERS, BadRequest, parse_head
from runnel.adapters.prometheus import PrometheusMetrics
from runnel.domain.health import Check, Verdict

GOOD = b"GET /readyz HTTP/1.1\r\nHost: localhost:9100\r\nUser-Agent: kube-probe/1.30\r\n\r\n"


def test_a_probe_request_parses() -> None:
    request = parse_head(GOOD)
    assert request.method == "GET"
    assert request.path == "/readyz"
    assert request.version == (1, 1)
    assert request.header("USER-AGENT") == "kube-probe/1.30"


def test_http_1_0_needs_no_host_and_the_query_is_not_part_of_the_path() -> None:
    request = parse_head(b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n")
    assert (request.path, request.target) == ("/metrics", "/metrics?name[]=x")


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /readyz HTTP/1.1\r\n\r\n", HTTPStatus.BAD_REQUEST),  # no Host
        (b"GET /readyz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET  /readyz HTTP/1.1\r\nHost: a\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET /readyz\r\nHost: a\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET /readyz HTTP/1.1 extra\r\nHost: a\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"G(T /readyz HTTP/1.1\r\nHost: a\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET readyz HTTP/1.1\r\nHost: a\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET http://x/readyz HTTP/1.1\r\nHost: a\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET /readyz HTTP/1.1\nHost: a\r\n\r\n", HTTPStatus.BAD_REQUEST),  # bare LF
        (b"GET /readyz HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET /readyz HTTP/1.1\r\nHost : a\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET /readyz HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET /readyz HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET /readyz HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (
            b"GET /readyz HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
            HTTPStatus.BAD_REQUEST,
        ),
        (
            b"GET /readyz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            HTTPStatus.BAD_REQUEST,
        ),
        (b"GET /readyz HTTP/1.1\r\nHost: a\r\n", HTTPStatus.BAD_REQUEST),  # no blank line
        (b"GET /readyz HTTP/2.0\r\nHost: a\r\n\r\n", HTTPStatus.HTTP_VERSION_NOT_SUPPORTED),
        (b"GET /readyz HTTP/0.9\r\n\r\n", HTTPStatus.HTTP_VERSION_NOT_SUPPORTED),
        (b"GET /readyz HTTP/1.10\r\nHost: a\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (
            b"GET /readyz HTTP/1.1\r\nHost: a\r\n" + b"X: y\r\n" * MAX_HEADERS + b"\r\n",
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
        ),
        (
            b"GET /readyz HTTP/1.1\r\nHost: " + b"a" * MAX_HEAD + b"\r\n\r\n",
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
        ),
    ],
)
def test_malformed_or_unsupported_requests_are_refused(head: bytes, status: HTTPStatus) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_head(head)
    assert caught.value.status == status


def test_an_empty_content_length_of_zero_is_accepted() -> None:
    assert parse_head(b"GET /healthz HTTP/1.0\r\nContent-Length: 0\r\n\r\n").path == "/healthz"


# --------------------------------------------------------------------------- the server


class FakeProbes:
    def __init__(self) -> None:
        self.alive = True
        self.ready = True
        self.block = False

    async def liveness(self) -> Verdict:
        return Verdict((Check("halted", self.alive, "x"),))

    async def readiness(self) -> Verdict:
        if self.block:
            await asyncio.Event().wait()
        return Verdict((Check("backend", self.ready, "y"), Check("started", True, "z")))


@pytest.fixture
async def served() -> AsyncIterator[tuple[HttpEndpoint, FakeProbes, PrometheusMetrics]]:
    probes = FakeProbes()
    metrics = PrometheusMetrics()
    metrics.counter("runnel_events_sent_total", app="a", stream="s").inc(2)
    endpoint = HttpEndpoint(
        "127.0.0.1",
        0,
        probes,
        metrics.exposition,
        read_timeout=0.5,
        probe_timeout=0.5,
        max_connections=2,
    )
    await endpoint.start()
    yield endpoint, probes, metrics
    await endpoint.aclose()


async def ask(endpoint: HttpEndpoint, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.port)
    try:
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
    assert int(headers["content-length"]) == len(body)
    assert headers["connection"] == "close"
    return int(status_line.split(" ")[1]), headers, body


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.005)


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


async def test_the_three_paths_answer(served: tuple[HttpEndpoint, FakeProbes, object]) -> None:
    endpoint, probes, _ = served

    status, headers, body = await ask(endpoint, get("/metrics"))
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    assert b'runnel_events_sent_total{app="a",stream="s"} 2.0' in body

    status, headers, body = await ask(endpoint, get("/healthz"))
    assert (status, headers["content-type"]) == (200, "application/json")
    assert json.loads(body) == {
        "status": "ok",
        "checks": [{"name": "halted", "ok": True, "detail": "x"}],
    }

    probes.ready = False
    status, _, body = await ask(endpoint, get("/readyz"))
    assert status == 503
    assert json.loads(body)["status"] == "failing"
    assert json.loads(body)["checks"][0] == {"name": "backend", "ok": False, "detail": "y"}


async def test_prometheus_gets_openmetrics_when_it_asks(
    served: tuple[HttpEndpoint, FakeProbes, object],
) -> None:
    endpoint, _, _ = served
    request = (
        b"GET /metrics HTTP/1.1\r\nHost: t\r\n"
        b"Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n"
        b"\r\n"
    )
    status, headers, body = await ask(endpoint, request)
    assert status == 200
    assert headers["content-type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (get("/"), 404),
        (get("/metrics/extra"), 404),
        (b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 405),
        (b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n", 405),
        (b"GET /healthz HTTP/1.1\r\n\r\n", 400),
        (b"GET /healthz HTTP/3.0\r\nHost: t\r\n\r\n", 505),
        (b"GET /healthz HTTP/1.1\r\nHost: t\r\nX: " + b"x" * MAX_HEAD + b"\r\n\r\n", 431),
    ],
)
async def test_anything_else_is_refused_with_its_status(
    served: tuple[HttpEndpoint, FakeProbes, object], raw: bytes, status: int
) -> None:
    endpoint, _, _ = served
    answer, headers, _ = await ask(endpoint, raw)
    assert answer == status
    if status == 405:
        assert headers["allow"] == "GET"


async def test_a_client_that_sends_nothing_gets_408_and_a_closed_connection(
    served: tuple[HttpEndpoint, FakeProbes, object],
) -> None:
    endpoint, _, _ = served
    status, _, _ = await ask(endpoint, b"GET /healthz HTTP/1.1\r\n")
    assert status == 408


async def test_a_probe_that_does_not_answer_fails(
    served: tuple[HttpEndpoint, FakeProbes, object],
) -> None:
    endpoint, probes, _ = served
    probes.block = True
    status, _, body = await ask(endpoint, get("/readyz"))
    assert status == 503
    assert json.loads(body)["checks"] == [
        {"name": "answered", "ok": False, "detail": "no answer within 0.5s"}
    ]


async def test_connections_beyond_the_limit_are_turned_away(
    served: tuple[HttpEndpoint, FakeProbes, object],
) -> None:
    endpoint, _, _ = served
    # Two idle connections take both places (the server waits for their request heads).
    idle = [await asyncio.open_connection("127.0.0.1", endpoint.port) for _ in range(2)]
    try:
        await eventually(lambda: endpoint._active == 2)
        status, _, body = await ask(endpoint, get("/healthz"))
        assert (status, body) == (503, b"too many connections\n")
    finally:
        for _, writer in idle:
            writer.close()


async def test_metrics_off_answers_404_on_metrics_only() -> None:
    endpoint = HttpEndpoint("127.0.0.1", 0, FakeProbes(), None)
    await endpoint.start()
    try:
        status, _, body = await ask(endpoint, get("/metrics"))
        assert (status, body) == (404, b"metrics are off (see settings.metrics)\n")
        assert (await ask(endpoint, get("/healthz")))[0] == 200
    finally:
        await endpoint.aclose()


async def test_closing_ends_connections_in_progress() -> None:
    endpoint = HttpEndpoint("127.0.0.1", 0, FakeProbes(), None, read_timeout=60)
    await endpoint.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.port)
    try:
        await eventually(lambda: endpoint._active == 1)
        await asyncio.wait_for(endpoint.aclose(), 10)
        assert await asyncio.wait_for(reader.read(), 10) == b""
    finally:
        writer.close()
