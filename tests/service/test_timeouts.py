"""Stalled clients on the service's real uvicorn server: half-sent headers and bodies are dropped."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from qwen3_rag.service import ServiceLimits, create_app
from qwen3_rag.service.server import server_options

pytestmark = pytest.mark.slow  # the tests talk to a uvicorn server

LIMITS = ServiceLimits(header_timeout_s=1.0, body_timeout_s=1.0, max_connections=4)


@contextlib.contextmanager
def serve_with_options(app, limits: ServiceLimits) -> Iterator[tuple[str, int]]:
    """The app on uvicorn with the connection options ``serve`` uses, on a free loopback port."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **server_options(limits)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.01)
    try:
        yield sock.getsockname()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def address(embedder, reranker):
    with serve_with_options(create_app(embedder, reranker, limits=LIMITS), LIMITS) as a:
        yield a


def closed_within(s: socket.socket, seconds: float) -> bytes:
    """What the server sends before closing ``s``; fails if it is still open after ``seconds``."""
    s.settimeout(seconds)
    data = b""
    start = time.monotonic()
    while chunk := s.recv(4096):
        data += chunk
        assert time.monotonic() - start < seconds
    return data


def test_half_sent_headers_are_dropped(address):
    with socket.create_connection(address) as s:
        s.sendall(b"POST /rerank HTTP/1.1\r\nHost: x\r\nContent-")
        assert closed_within(s, 5) == b""
    with socket.create_connection(address) as s:  # connected, nothing sent
        assert closed_within(s, 5) == b""


def test_half_sent_body_gets_408(address):
    with socket.create_connection(address) as s:
        s.sendall(b"POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"query\": ")
        assert closed_within(s, 5).startswith(b"HTTP/1.1 408")


def test_connection_limit(address):
    import httpx

    stalled = [socket.create_connection(address) for _ in range(LIMITS.max_connections + 1)]
    try:
        for s in stalled:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        time.sleep(0.2)
        r = httpx.get(f"http://{address[0]}:{address[1]}/health", timeout=5)
        assert r.status_code == 503
    finally:
        for s in stalled:
            s.close()
    time.sleep(1.5)
    assert httpx.get(f"http://{address[0]}:{address[1]}/health", timeout=5).status_code == 200
