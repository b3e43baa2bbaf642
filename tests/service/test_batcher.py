"""Micro-batching: a lone request runs at once, requests that arrive while the engine runs
share the next call; concurrent HTTP clients share engine calls."""

from __future__ import annotations

import asyncio
import threading

import httpx
import numpy as np
import pytest

from qwen3_rag.service.batcher import MicroBatcher

QUERY = "What is the capital of France?"


async def test_no_wait_runs_alone_then_batches_what_queued_meanwhile():
    calls: list[list[int]] = []
    release = threading.Event()

    def fn(items: list[int]) -> np.ndarray:
        calls.append(list(items))
        if len(calls) == 1:
            release.wait(5)  # the first call blocks while the others queue up
        return np.asarray(items) * 10

    b = MicroBatcher(fn, max_items=100, max_wait_s=0.0)
    first = asyncio.create_task(b.submit([1]))
    while not calls:
        await asyncio.sleep(0.001)
    assert calls == [[1]]  # ran without waiting for company
    rest = [asyncio.create_task(b.submit([i, i + 1])) for i in (2, 4, 6)]
    await asyncio.sleep(0.05)
    release.set()
    out = await asyncio.gather(first, *rest)
    await b.close()
    assert [o.tolist() for o in out] == [[10], [20, 30], [40, 50], [60, 70]]
    assert calls == [[1], [2, 3, 4, 5, 6, 7]]  # the three queued requests: one engine call


@pytest.mark.slow
def test_concurrent_clients_are_micro_batched(url, client, embedder, reranker, cos, metric):
    texts = [f"document number {i} about topic {i % 7}" for i in range(32)]
    expected = embedder.embed_documents(texts)
    expected_scores = reranker.score(QUERY, texts)
    before = client.get("/metrics").text

    async def run():
        async with httpx.AsyncClient(base_url=url, timeout=120) as ac:
            emb = [ac.post("/v1/embeddings", json={"input": t}) for t in texts]
            rr = [ac.post("/rerank", json={"query": QUERY, "documents": [t]}) for t in texts]
            return await asyncio.gather(*emb, *rr)

    responses = asyncio.run(run())
    assert all(r.status_code == 200 for r in responses)
    got = np.asarray([r.json()["data"][0]["embedding"] for r in responses[:32]])
    assert cos(got, expected).min() >= 0.9999
    scores = np.asarray([r.json()["results"][0]["relevance_score"] for r in responses[32:]])
    assert np.allclose(scores, expected_scores, atol=1e-5)

    after = client.get("/metrics").text
    for engine in ("embedding", "reranker"):
        calls = metric(after, "qwen3_rag_engine_calls_total", engine=engine) - metric(
            before, "qwen3_rag_engine_calls_total", engine=engine)
        served = metric(after, "qwen3_rag_engine_batched_requests_total", engine=engine) - metric(
            before, "qwen3_rag_engine_batched_requests_total", engine=engine)
        assert served == 32
        assert 1 <= calls < 32, f"{engine}: {calls} engine calls for 32 requests"
