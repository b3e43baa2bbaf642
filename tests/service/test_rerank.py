"""``POST /rerank`` (and ``/v1/rerank``), ``POST /classify`` against local reranker scores."""

from __future__ import annotations

import numpy as np
import pytest

from qwen3_rag.service import create_app

DOCS = ["Paris is the capital of France.", "Bananas are rich in potassium.", "The Eiffel Tower is in Paris.",
        "短い日本語の文書。", "x"]
QUERY = "What is the capital of France?"


@pytest.mark.slow
def test_rerank_matches_local(client, reranker):
    expected = reranker.score(QUERY, DOCS)
    r = client.post("/rerank", json={"query": QUERY, "documents": DOCS, "return_documents": True}).json()
    results = r["results"]
    assert [x["index"] for x in results] == list(np.argsort(-expected, kind="stable"))
    for x in results:
        assert x["relevance_score"] == pytest.approx(float(expected[x["index"]]), abs=1e-5)
        assert x["confidence"] == pytest.approx(abs(2 * expected[x["index"]] - 1), abs=1e-5)
        assert x["document"] == {"text": DOCS[x["index"]]}
    assert r["total_found"] == len(DOCS) and r["processing_time_ms"] > 0

    top = client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS, "top_n": 2}).json()["results"]
    assert [x["index"] for x in top] == [x["index"] for x in results[:2]] and top[0]["document"] is None

    instr = reranker.score(QUERY, DOCS, instruction="Judge fruit")
    body = {"query": QUERY, "documents": DOCS, "instruction": "Judge fruit"}
    got = client.post("/rerank", json=body).json()
    assert {x["index"]: x["relevance_score"] for x in got["results"]} == pytest.approx(dict(enumerate(instr)),
                                                                                      abs=1e-5)


@pytest.mark.slow
def test_rerank_thresholds(client, reranker):
    scores = reranker.score(QUERY, DOCS)
    conf = np.abs(2 * scores - 1)
    cut = float(np.median(scores))
    r = client.post("/rerank", json={"query": QUERY, "documents": DOCS, "score_threshold": cut}).json()
    assert sorted(x["index"] for x in r["results"]) == sorted(np.flatnonzero(scores >= cut).tolist())
    mid = float(np.median(conf))
    body = {"query": QUERY, "documents": DOCS, "min_confidence": mid, "top_n": 1}
    r = client.post("/rerank", json=body).json()
    assert r["total_found"] == int((conf >= mid - 1e-6).sum()) and len(r["results"]) == 1
    assert r["results"][0]["confidence"] >= mid - 1e-6


@pytest.mark.slow
def test_classify_token_ids(client, reranker):
    ids = reranker.formatter.pairs([(QUERY, d) for d in DOCS], reranker.instruction)
    data = client.post("/classify", json={"input": ids}).json()["data"]
    assert [d["index"] for d in data] == list(range(len(DOCS)))
    assert np.allclose([d["probs"][0] for d in data], reranker.score(QUERY, DOCS), atol=1e-5)


def test_a_service_without_a_reranker_says_so(embedder):
    from fastapi.testclient import TestClient

    with TestClient(create_app(embedder)) as c:
        for path in ("/rerank", "/v1/rerank", "/classify"):
            r = c.post(path, json={"query": "q", "documents": ["d"]})
            assert r.status_code == 404 and "no reranker loaded" in r.text, (path, r.text)
        assert "/rerank" not in c.get("/openapi.json").json()["paths"]  # not part of its API
    with TestClient(create_app(embedder, api_key="sesame")) as c:  # behind the key like the rest
        assert c.post("/rerank", json={}).status_code == 401
        r = c.post("/rerank", json={}, headers={"Authorization": "Bearer sesame"})
        assert r.status_code == 404 and "no reranker loaded" in r.text
