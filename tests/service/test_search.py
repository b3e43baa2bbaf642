"""``POST /search`` over a real, saved and reloaded FaissStore: vector order, filters,
thresholds, reranking, concurrent searches."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest

from qwen3_rag.service import create_app
from qwen3_rag.testing.server import serve_in_thread

pytestmark = pytest.mark.slow  # every test here talks to a uvicorn server

QUERY = "What is the capital of France?"


def vector_order(corpus, embedder, query, ids=None):
    """(id, cosine) of the corpus for ``query``, best first, computed here with numpy."""
    rows = [c for c in corpus if ids is None or c[0] in ids]
    scores = embedder.embed_documents([t for _, t, _ in rows]) @ embedder.embed_query(query)
    return [(rows[i][0], float(scores[i])) for i in np.argsort(-scores, kind="stable")]


def test_search(search_url, embedder, corpus):
    with httpx.Client(base_url=search_url, timeout=60) as c:
        h = c.get("/health").json()
        assert h["index"] == {"size": len(corpus), "dimension": embedder.dimension, "version": "v-000001"}
        r = c.post("/search", json={"query": QUERY, "top_k": 3, "preview_chars": 20}).json()
    expected = vector_order(corpus, embedder, QUERY)[:3]
    assert [x["id"] for x in r["results"]] == [i for i, _ in expected]
    assert [x["score"] for x in r["results"]] == pytest.approx([s for _, s in expected], abs=1e-4)
    assert [x["rank"] for x in r["results"]] == [1, 2, 3]
    full = {i: t for i, t, _ in corpus}
    for x in r["results"]:
        assert x["text"] == full[x["id"]][:20] and x["text_length"] == len(full[x["id"]])
        assert x["truncated"] == (len(full[x["id"]]) > 20) and x["relevance_score"] is None
        assert x["metadata"] == next(m for i, _, m in corpus if i == x["id"])
    assert r["total_found"] == 3 and r["reranked"] is False
    assert set(r["timings_ms"]) == {"embed", "search", "total"} and r["processing_time_ms"] > 0


def test_search_filter_and_threshold(search_url, embedder, corpus):
    with httpx.Client(base_url=search_url, timeout=60) as c:
        flt = {"lang": "en", "year": {"$gte": 2001}}
        r = c.post("/search", json={"query": QUERY, "top_k": 10, "filter": flt})
        expected = vector_order(corpus, embedder, QUERY, ids={"fr-1", "fruit-1", "fruit-2"})
        assert [x["id"] for x in r.json()["results"]] == [i for i, _ in expected]
        cut = vector_order(corpus, embedder, QUERY)[2][1]
        r = c.post("/search", json={"query": QUERY, "top_k": 10, "score_threshold": cut}).json()
        assert [x["id"] for x in r["results"]] == [
            i for i, s in vector_order(corpus, embedder, QUERY) if s >= cut]
        for bad in ({"lang": {"$regex": "e.*"}}, {}, {"lang": {"$in": "en"}}, {"lang": [[1, 2]]},
                    {"lang": {}}, {"year": 2**64}, {"la\x00ng": 1}, {"\ud800": 1},
                    {f"k{i}": i for i in range(1000)}, {"year": {"$gt": None}}):
            body = json.dumps({"query": QUERY, "filter": bad})  # ASCII: a lone surrogate as \\ud800
            r = c.post("/search", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 422, (bad, r.text)
            assert r.json()["detail"][0]["msg"]


def test_search_rerank(search_url, embedder, reranker, corpus):
    candidates = [i for i, _ in vector_order(corpus, embedder, QUERY)[:4]]
    texts = {i: t for i, t, _ in corpus}
    p = reranker.score(QUERY, [texts[i] for i in candidates])
    best = [candidates[j] for j in np.argsort(-p, kind="stable")]
    with httpx.Client(base_url=search_url, timeout=60) as c:
        r = c.post("/search", json={"query": QUERY, "top_k": 2, "rerank": 4}).json()
        assert r["reranked"] and [x["id"] for x in r["results"]] == best[:2] and r["total_found"] == 4
        for x in r["results"]:
            q = float(p[candidates.index(x["id"])])
            assert x["relevance_score"] == pytest.approx(q, abs=1e-5)
            assert x["confidence"] == pytest.approx(abs(2 * q - 1), abs=1e-5)
        assert set(r["timings_ms"]) == {"embed", "search", "rerank", "total"}

        conf = np.abs(2 * p - 1)
        mid = float(np.median(conf))
        r = c.post("/search", json={"query": QUERY, "top_k": 4, "rerank": 4, "min_confidence": mid}).json()
        assert r["total_found"] == int((conf >= mid).sum())
        assert all(x["confidence"] >= mid for x in r["results"])

        r = c.post("/search", json={"query": QUERY, "top_k": 1, "rerank": True}).json()  # 4 × top_k
        assert [x["id"] for x in r["results"]] == best[:1] and r["total_found"] == 4

        for body in ({"query": QUERY, "min_confidence": 0.5}, {"query": QUERY, "top_k": 0},
                     {"query": QUERY, "top_k": 1001}, {"query": QUERY, "rerank": -1},
                     {"query": QUERY, "rerank": 5000}, {"query": QUERY, "rerank": 0}, {"query": "   "},
                     {"query": QUERY, "preview_chars": -1}):
            assert c.post("/search", json=body).status_code == 422, body


def test_search_without_reranker(embedder, store):
    with serve_in_thread(create_app(embedder, None, store)) as base:
        r = httpx.post(base + "/search", json={"query": QUERY, "rerank": True}, timeout=60)
        assert r.status_code == 422 and "no reranker" in r.text
        assert httpx.post(base + "/rerank", json={"query": "q", "documents": ["a"]}).status_code == 404


def test_concurrent_searches(search_url, embedder, reranker, corpus):
    queries = [f"question {i} about {t}" for i, t in enumerate(["France", "fruit", "cells", "Japan"] * 6)]

    async def run():
        async with httpx.AsyncClient(base_url=search_url, timeout=120) as ac:
            return await asyncio.gather(*(ac.post("/search", json={"query": q, "top_k": 2, "rerank": 3})
                                          for q in queries))

    responses = asyncio.run(run())
    texts = {i: t for i, t, _ in corpus}
    for q, r in zip(queries, responses, strict=True):
        assert r.status_code == 200
        candidates = [i for i, _ in vector_order(corpus, embedder, q)[:3]]
        p = reranker.score(q, [texts[i] for i in candidates])
        best = [candidates[j] for j in np.argsort(-p, kind="stable")[:2]]
        assert [x["id"] for x in r.json()["results"]] == best


def test_search_modes(search_url, embedder, reranker, store, corpus):
    """Lexical and hybrid search through the service answer as the store does; hybrid results
    reranked are the fused candidates reranked."""
    query = "mitochondria powerhouse"  # words of one document only
    qv = embedder.embed_queries([query])
    with httpx.Client(base_url=search_url, timeout=60) as c:
        lexical = c.post("/search", json={"query": query, "top_k": 3, "mode": "lexical"}).json()
        assert [(x["id"], x["sources"]) for x in lexical["results"]] == [("misc-1", {"lexical": 1})]
        assert set(lexical["timings_ms"]) == {"search", "total"}  # no query embedding
        for alpha in (None, 0.3):
            r = c.post("/search", json={"query": query, "top_k": 4, "mode": "hybrid", "alpha": alpha}).json()
            want = store.search(qv, k=4, mode="hybrid", query=query, alpha=alpha)[0]
            assert [(x["id"], x["sources"]) for x in r["results"]] == [(h.id, h.sources) for h in want]
            assert [x["score"] for x in r["results"]] == pytest.approx([h.score for h in want], abs=1e-5)
            assert r["results"][0]["id"] == "misc-1" and r["results"][0]["sources"]["lexical"] == 1
        dense = c.post("/search", json={"query": query, "top_k": 2}).json()
        assert all(x["sources"] == {"dense": x["rank"]} for x in dense["results"])

        fused = [h.id for h in store.search(qv, k=4, mode="hybrid", query=query)[0]]
        texts = {i: t for i, t, _ in corpus}
        p = reranker.score(query, [texts[i] for i in fused])
        r = c.post("/search", json={"query": query, "top_k": 2, "mode": "hybrid", "rerank": 4}).json()
        assert [x["id"] for x in r["results"]] == [fused[j] for j in np.argsort(-p, kind="stable")[:2]]

        for bad in ({"mode": "sparse"}, {"alpha": 0.5}, {"mode": "lexical", "alpha": 0.5},
                    {"mode": "hybrid", "alpha": 1.5}, {"mode": "hybrid", "alpha": "half"}):
            r = c.post("/search", json={"query": query, **bad})
            assert r.status_code == 422, (bad, r.text)
            assert r.json()["detail"][0]["loc"][-1] in ("mode", "alpha"), r.text
