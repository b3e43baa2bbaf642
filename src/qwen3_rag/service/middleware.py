"""ASGI middleware of the service: body-size limit and request metrics."""

from __future__ import annotations

import json
import time
from typing import Any

from qwen3_rag.service.metrics import ServiceMetrics

Scope = dict[str, Any]


async def _send_json(send: Any, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class BodyLimitMiddleware:
    """Answer 413 to bodies over ``max_bytes`` (by Content-Length or as they stream in).

    The body is read here (at most ``max_bytes``) and replayed to the app, so an oversized
    chunked body never reaches the endpoint.
    """

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

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
            message = await receive()
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


class MetricsMiddleware:
    """Count requests by endpoint (route template) and status, and time them."""

    def __init__(self, app: Any, metrics: ServiceMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        recorder = StatusRecorder(send)
        start = time.perf_counter()
        try:
            await self.app(scope, receive, recorder)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(endpoint, scope.get("method", ""), str(recorder.status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
