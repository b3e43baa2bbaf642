"""Hostile clients on a real uvicorn server: work before authentication, invented methods."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from qwen3_rag.service import create_app
from qwen3_rag.testing.server import serve_in_thread

pytestmark = pytest.mark.slow  # the tests talk to a uvicorn server

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def keyed_url(embedder, reranker):
    with serve_in_thread(create_app(embedder, reranker, api_key=KEY)) as base:
        yield base


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def test_unauthenticated_body_is_not_read(keyed_url):
    """A 30 MB body without a key: the 401 arrives while the client has sent only 64 KiB."""
    size = 30 * 1024 * 1024
    with socket.create_connection(_address(keyed_url), timeout=5) as s:
        s.sendall(b"POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(size).encode() + b"\r\n\r\n" + b"x" * 65536)
        start = time.monotonic()
        answer = s.recv(4096)  # the server would wait for 30 MB before answering if it read it
        assert time.monotonic() - start < 5
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_malformed_json_without_key_is_401(keyed_url):
    with httpx.Client(base_url=keyed_url, timeout=30) as c:
        for path in ("/rerank", "/search", "/v1/embeddings", "/classify"):
            r = c.post(path, content=b"{not json", headers={"Content-Type": "application/json"})
            assert r.status_code == 401, (path, r.status_code, r.text)
        r = c.post("/rerank", content=b"{not json", headers={"Authorization": f"Bearer {KEY}",
                                                            "Content-Type": "application/json"})
        assert r.status_code == 422


def test_invented_methods_do_not_grow_metrics(keyed_url):
    ok = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=keyed_url, timeout=30) as c:
        c.request("BREW", "/warm-up")
        before = c.get("/metrics", headers=ok).text
        for i in range(300):
            c.request(f"M{i}X", f"/invented/{i}")
            c.request("GET", f"/no-such-path-{i}")
        after = c.get("/metrics", headers=ok).text
    assert "M1X" not in after and "no-such-path" not in after
    assert len(after) < len(before) + 2000, (len(before), len(after))


def test_non_ascii_api_key_refused_at_start(embedder):
    with pytest.raises(ValueError, match="API key"):
        create_app(embedder, api_key="clé-secrète")
