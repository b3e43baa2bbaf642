"""One request cannot hold the models: a token budget per request (413 beyond, shown in the
OpenAPI schema), and large requests cut into bounded engine calls that take turns with small
ones (a small request behind a large one finishes long before it)."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import numpy as np
import pytest

from qwen3_rag.service import ServiceLimits, create_app
from qwen3_rag.service.batcher import MicroBatcher
from qwen3_rag.testing.server import serve_in_thread

QUERY = "What is the capital of France?"


async def test_a_large_request_is_cut_and_a_small_one_behind_it_runs_in_the_next_call():
    calls: list[list[int]] = []
    started = threading.Event()

    def fn(items: list[int]) -> np.ndarray:
        calls.append(list(items))
        started.set()
        time.sleep(0.02)
        return np.asarray(items) * 10

    b = MicroBatcher(fn, max_items=10, max_wait_s=0.0)
    large = asyncio.create_task(b.submit(list(range(100))))
    while not started.is_set():
        await asyncio.sleep(0.001)
    small = await b.submit([1000, 1001])
    out = await large
    await b.close()
    assert out.tolist() == [10 * i for i in range(100)]  # every row, in order, across calls
    assert small.tolist() == [10000, 10010]
    assert all(len(c) <= 10 for c in calls) and len(calls) >= 10
    assert [i for i, c in enumerate(calls) if 1000 in c] == [1]  # the call after the one running
    assert calls[1] == [*range(10, 18), 1000, 1001]  # equal shares (5 each), then the rest to the first


async def test_calls_stay_within_the_token_bound_and_a_lone_long_item_runs_alone():
    calls: list[list[list[int]]] = []

    def fn(items: list[list[int]]) -> list[int]:
        calls.append(items)
        return [len(x) for x in items]

    b = MicroBatcher(fn, max_items=100, max_tokens=10)
    seqs = [[0] * n for n in (4, 4, 4, 12, 3, 7, 1)]
    out = await b.submit(seqs)
    await b.close()
    assert out == [4, 4, 4, 12, 3, 7, 1]
    assert [[len(x) for x in c] for c in calls] == [[4, 4], [4], [12], [3, 7], [1]]


async def test_a_failing_piece_fails_only_its_request():
    def fn(items: list[int]) -> np.ndarray:
        if 13 in items:
            raise ValueError("bad item")
        time.sleep(0.01)
        return np.asarray(items)

    b = MicroBatcher(fn, max_items=4)
    good, bad = await asyncio.gather(b.submit(list(range(10))), b.submit([11, 12, 13]),
                                     return_exceptions=True)
    await b.close()
    assert good.tolist() == list(range(10)) and isinstance(bad, ValueError)


@pytest.fixture(scope="module")
def fair_url(embedder, reranker, store):
    limits = ServiceLimits(max_batch_tokens=4096)
    with serve_in_thread(create_app(embedder, reranker, store, limits=limits)) as base:
        yield base


@pytest.fixture(scope="module")
def budget_url(embedder, reranker, store):
    with serve_in_thread(create_app(embedder, reranker, store,
                                    limits=ServiceLimits(max_request_tokens=40_000))) as base:
        yield base


@pytest.mark.slow
def test_a_small_rerank_behind_a_large_classify_finishes_long_before_it(fair_url, reranker):
    rng = np.random.default_rng(0)
    large = {"input": rng.integers(0, 1000, (48, 2048)).tolist()}  # 98,304 tokens: 24 calls of 4,096
    small = {"query": QUERY, "documents": ["Paris is the capital of France."]}
    expected = float(reranker.score(QUERY, small["documents"])[0])

    async def run():
        async with httpx.AsyncClient(base_url=fair_url, timeout=300) as c:
            await c.post("/rerank", json=small)  # warm up
            t0 = time.perf_counter()

            async def timed(coro):
                r = await coro
                return r, time.perf_counter() - t0

            big = asyncio.create_task(timed(c.post("/classify", json=large)))
            await asyncio.sleep(0.5)  # the large request is in the engine
            little = await timed(c.post("/rerank", json=small))
            return await big, little, little[1] - 0.5

    (big, t_big), (little, _), t_little = asyncio.run(run())
    assert big.status_code == 200 and len(big.json()["data"]) == 48
    assert little.status_code == 200
    assert little.json()["results"][0]["relevance_score"] == pytest.approx(expected, abs=1e-5)
    assert t_little < 0.25 * t_big, (t_little, t_big)  # one call of 4,096 tokens, not the 98,304


@pytest.mark.slow
def test_requests_over_the_token_budget_get_413_before_any_engine_work(budget_url):
    long_doc = "word " * 900
    with httpx.Client(base_url=budget_url, timeout=120) as c:
        for path, body in [
            ("/classify", {"input": [[1] * 4000] * 11}),
            ("/v1/embeddings", {"input": [[1] * 4000] * 11}),
            ("/v1/embeddings", {"input": [long_doc] * 50}),
            ("/rerank", {"query": QUERY, "documents": [long_doc] * 50}),
        ]:
            r = c.post(path, json=body)
            assert r.status_code == 413, (path, r.text)
            assert "40,000 are allowed per request" in r.json()["detail"][0]["msg"]
        assert c.post("/classify", json={"input": [[1] * 100] * 4}).status_code == 200
        schema = c.get("/openapi.json").json()["components"]["schemas"]
        for name in ("SearchRequest", "RerankRequest", "EmbeddingRequest", "ClassifyRequest"):
            assert schema[name]["x-max-request-tokens"] == 40_000


@pytest.mark.slow
def test_a_search_reranking_more_tokens_than_the_budget_gets_413(embedder, reranker, tmp_path):
    from qwen3_rag import FaissStore

    texts = [f"document {i} " + "about many things " * 300 for i in range(8)]
    s = FaissStore(embedder.dimension, embedder=embedder)
    s.add(texts, embedder.embed_documents(texts))
    store = FaissStore.load(s.save(tmp_path / "s"), embedder)
    limits = ServiceLimits(max_request_tokens=4000)
    with serve_in_thread(create_app(embedder, reranker, store, limits=limits)) as base:
        r = httpx.post(base + "/search", json={"query": QUERY, "top_k": 2, "rerank": 8}, timeout=120)
        assert r.status_code == 413 and "max_request_tokens" in r.text
        ok = httpx.post(base + "/search", json={"query": QUERY, "top_k": 2, "rerank": 2}, timeout=120)
        assert ok.status_code == 200 and len(ok.json()["results"]) == 2
