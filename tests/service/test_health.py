"""``GET /health`` and ``GET /metrics``."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # the tests talk to a uvicorn server


def test_health(client, embedder, reranker):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["service"] == "qwen3-rag"
    assert h["embedding"] == {"model": embedder.model, "dimension": 64, "max_length": embedder.max_length,
                              "backend": "hf"}
    assert h["reranker"]["model"] == reranker.model
    assert h["index"] is None


def test_metrics(client, metric):
    client.post("/v1/embeddings", json={"input": "metrics"})
    text = client.get("/metrics").text
    assert metric(text, "qwen3_rag_requests_total", endpoint="/v1/embeddings", status="200") >= 1
    assert metric(text, "qwen3_rag_stage_duration_seconds_count", stage="embed") >= 1
    assert metric(text, "qwen3_rag_request_duration_seconds_count", endpoint="/v1/embeddings") >= 1
