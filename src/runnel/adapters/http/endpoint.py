"""HttpEndpoint: a worker's ``/metrics``, ``/healthz`` and ``/readyz`` on asyncio's streams.

It runs on the worker's own event loop, so an answer from ``/healthz`` also proves that
the loop is not blocked. Each connection carries one request and is closed after the
answer. Requests are bounded: the head must arrive within ``read_timeout`` and fit in
:data:`~runnel.adapters.http.request.MAX_HEAD` bytes, at most ``max_connections`` are
served at once (more are answered 503 at once), and a probe that does not answer within
``probe_timeout`` fails.

======== ============================================================================
path     answer
======== ============================================================================
/metrics 200 and the Prometheus text format; 404 when metrics are off
/healthz 200 while the worker is alive, else 503; JSON naming each check
/readyz  200 while the worker is ready, else 503; JSON naming each check
======== ============================================================================

Any other path is 404, any other method 405.

Example:
    A worker's endpoint, as ``App.run_worker`` starts it::

        endpoint = HttpEndpoint("127.0.0.1", 9100, probes, metrics.exposition)
        await endpoint.start()
        ...
        await endpoint.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from http import HTTPStatus

from runnel.adapters.http.request import MAX_HEAD, BadRequest, Request, parse_head, response
from runnel.domain.health import Verdict
from runnel.telemetry import Probes

log = logging.getLogger(__name__)

Exposition = Callable[[str], tuple[bytes, str]]
"""Renders the metrics for a request's ``Accept`` header: the body and its content type."""

PATHS = ("/metrics", "/healthz", "/readyz")


class HttpEndpoint:
    """Serves the worker's metrics and probes over HTTP/1.1.

    Args:
        host: the address to listen on (``0.0.0.0`` for every interface).
        port: the port (0 picks a free one; see :attr:`port` once started).
        probes: answers ``/healthz`` and ``/readyz``.
        exposition: renders ``/metrics``; None when metrics are off.
        read_timeout: seconds a client has to send its request head.
        write_timeout: seconds a client has to take the answer.
        probe_timeout: seconds a probe may take before it counts as failed.
        max_connections: connections served at once.
    """

    def __init__(
        self,
        host: str,
        port: int,
        probes: Probes,
        exposition: Exposition | None,
        *,
        read_timeout: float = 5.0,
        write_timeout: float = 10.0,
        probe_timeout: float = 2.0,
        max_connections: int = 16,
    ) -> None:
        self.host = host
        self.port = port
        self._probes = probes
        self._exposition = exposition
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._probe_timeout = probe_timeout
        self._max_connections = max_connections
        self._active = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen; :attr:`port` is the bound port afterwards.

        Raises:
            OSError: the address cannot be bound (in use, not local, no permission).
        """
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=MAX_HEAD, reuse_address=True
        )
        sockets = self._server.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("serving /metrics, /healthz and /readyz on %s:%d", self.host, self.port)

    async def aclose(self) -> None:
        """Stop listening and end the connections being served."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._active += 1
        try:
            answer: bytes | None
            if self._active > self._max_connections:
                answer = response(HTTPStatus.SERVICE_UNAVAILABLE, b"too many connections\n")
            else:
                answer = await self._answer(reader)
            if answer:
                writer.write(answer)
                await asyncio.wait_for(writer.drain(), self._write_timeout)
        except (ConnectionError, asyncio.TimeoutError):
            pass  # the client went away or stopped reading: nothing more to do
        finally:
            self._active -= 1
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _answer(self, reader: asyncio.StreamReader) -> bytes | None:
        """The response to the one request on this connection (None: just close)."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self._read_timeout)
        except asyncio.TimeoutError:
            return response(HTTPStatus.REQUEST_TIMEOUT, b"request head not received in time\n")
        except asyncio.LimitOverrunError:
            return response(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, b"request too large\n")
        except asyncio.IncompleteReadError:
            return None  # closed before a whole head arrived
        try:
            request = parse_head(head)
        except BadRequest as exc:
            return response(exc.status, exc.reason.encode() + b"\n")
        try:
            return await self._route(request)
        except Exception:
            log.exception("the HTTP endpoint failed to answer %s %s", request.method, request.path)
            return response(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n")

    async def _route(self, request: Request) -> bytes:
        path = request.path
        if path not in PATHS:
            return response(HTTPStatus.NOT_FOUND, b"not found: try /metrics, /healthz, /readyz\n")
        if request.method != "GET":
            return response(
                HTTPStatus.METHOD_NOT_ALLOWED, b"only GET is allowed\n", extra=(("Allow", "GET"),)
            )
        if path == "/metrics":
            if self._exposition is None:
                return response(HTTPStatus.NOT_FOUND, b"metrics are off (see settings.metrics)\n")
            body, content_type = self._exposition(request.header("accept") or "")
            return response(HTTPStatus.OK, body, content_type)
        probe = self._probes.liveness if path == "/healthz" else self._probes.readiness
        try:
            verdict = await asyncio.wait_for(probe(), self._probe_timeout)
        except asyncio.TimeoutError:
            failed: dict[str, object] = {
                "status": "failing",
                "checks": [_timed_out(self._probe_timeout)],
            }
            return _json(HTTPStatus.SERVICE_UNAVAILABLE, failed)
        status = HTTPStatus.OK if verdict.ok else HTTPStatus.SERVICE_UNAVAILABLE
        return _json(status, verdict_body(verdict))


def verdict_body(verdict: Verdict) -> dict[str, object]:
    """The JSON answer of a probe.

    Example:
        >>> from runnel.domain.health import Check
        >>> verdict_body(Verdict((Check("backend", True, "it answers"),)))
        {'status': 'ok', 'checks': [{'name': 'backend', 'ok': True, 'detail': 'it answers'}]}
    """
    return {
        "status": "ok" if verdict.ok else "failing",
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in verdict.checks],
    }


def _timed_out(seconds: float) -> dict[str, object]:
    return {"name": "answered", "ok": False, "detail": f"no answer within {seconds:g}s"}


def _json(status: HTTPStatus, body: dict[str, object]) -> bytes:
    return response(status, json.dumps(body).encode() + b"\n", "application/json")
