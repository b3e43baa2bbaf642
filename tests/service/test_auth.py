"""The API key: every route but ``/health`` needs ``Authorization: Bearer <key>``."""

from __future__ import annotations

import httpx
import pytest

from qwen3_rag.service import create_app
from qwen3_rag.testing.server import serve_in_thread


@pytest.mark.slow
def test_api_key(embedder, reranker):
    with serve_in_thread(create_app(embedder, reranker, api_key="s3cret-key")) as base, \
            httpx.Client(base_url=base, timeout=60) as c:
        body = {"query": "q", "documents": ["a"]}
        assert c.get("/health").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-key"},
                        {"Authorization": "Bearer s3cret-key-and-more"}, {"Authorization": "Bearer"}):
            r = c.post("/rerank", json=body, headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert c.get("/metrics", headers=headers).status_code == 401
        ok = {"Authorization": "Bearer s3cret-key"}
        assert c.post("/rerank", json=body, headers=ok).status_code == 200
        assert c.post("/v1/embeddings", json={"input": "a"}, headers=ok).status_code == 200
        assert c.get("/metrics", headers=ok).status_code == 200
