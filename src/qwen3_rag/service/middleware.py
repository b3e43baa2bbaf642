"""ASGI middleware of the service: API key, body-size limit and read timeout, request metrics."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Collection
from typing import Any

from qwen3_rag.service.metrics import ServiceMetrics

Scope = dict[str, Any]


async def _send_json(send: Any, status: int, body: dict[str, Any]) -> None:
    """Answer ``status`` with a JSON body and close the connection: the request's body was not
    read to its end, so the connection cannot carry another request."""
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
               (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def key_matches(headers: list[tuple[bytes, bytes]], key: bytes) -> bool:
    """Whether ``headers`` hold ``Authorization: Bearer <key>`` (compared in constant time)."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), key)
    return False


class AuthMiddleware:
    """Answer 401 to a request without the API key from its headers alone, before its body is
    read or parsed; ``public`` paths (``/health``, the OpenAPI docs) pass without it."""

    def __init__(self, app: Any, key: bytes | None, public: Collection[str]):
        self.app = app
        self.key = key
        self.public = frozenset(public)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if (scope["type"] != "http" or self.key is None or scope.get("path") in self.public
                or key_matches(scope.get("headers", []), self.key)):
            await self.app(scope, receive, send)
            return
        data = json.dumps({"detail": "invalid or missing API key (Authorization: Bearer <key>)"}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
            (b"www-authenticate", b"Bearer"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": data})


class BodyLimitMiddleware:
    """Answer 413 to bodies over ``max_bytes`` (by Content-Length or as they stream in), 408 to
    bodies that stall ``timeout_s`` between two reads.

    The body is read here (at most ``max_bytes``) and replayed to the app, so an oversized
    chunked body never reaches the endpoint.
    """

    def __init__(self, app: Any, max_bytes: int, timeout_s: float = 30.0):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = {"detail": f"request body exceeds {self.max_bytes} bytes"}
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    await _send_json(send, 400, {"detail": "invalid Content-Length"})
                    return
                if length > self.max_bytes:
                    await _send_json(send, 413, too_large)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except asyncio.TimeoutError:
                await _send_json(send, 408, {"detail": f"request body stalled for {self.timeout_s} s"})
                return
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await _send_json(send, 413, too_large)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        await self.app(scope, Replay(b"".join(chunks), receive), send)


class Replay:
    """The ``receive`` an app gets after the body was read: the body once, then the client's
    own messages (a disconnect)."""

    def __init__(self, body: bytes, receive: Any):
        self.body: bytes | None = body
        self.receive = receive

    async def __call__(self) -> dict[str, Any]:
        if self.body is not None:
            body, self.body = self.body, None
            return {"type": "http.request", "body": body, "more_body": False}
        result: dict[str, Any] = await self.receive()
        return result


class StatusRecorder:
    """The ``send`` an app gets: passes messages on, remembering the response status."""

    def __init__(self, send: Any):
        self.send = send
        self.status = 500  # what an app that never answers amounts to

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self.send(message)


#: the methods counted by name in the metrics; any other counts as "other"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


class MetricsMiddleware:
    """Count requests by endpoint (route template) and status, and time them.

    Labels come from bounded sets only: the app's route templates (any other path is
    ``unmatched``) and :data:`KNOWN_METHODS` (any other method is ``other``), so invented
    paths and methods never add series.
    """

    def __init__(self, app: Any, metrics: ServiceMetrics, routes: Collection[str] = ()):
        self.app = app
        self.metrics = metrics
        self.routes = frozenset(routes)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        recorder = StatusRecorder(send)
        start = time.perf_counter()
        try:
            await self.app(scope, receive, recorder)
        finally:
            route = getattr(scope.get("route"), "path", None) or scope.get("path")
            endpoint = route if route in self.routes else "unmatched"
            method = scope.get("method", "")
            method = method if method in KNOWN_METHODS else "other"
            self.metrics.requests.labels(endpoint, method, str(recorder.status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
