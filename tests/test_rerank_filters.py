"""``Qwen3Reranker.rerank``'s score_threshold and min_confidence filters (issue 8)."""

from __future__ import annotations

import numpy as np
import pytest

from qwen3_rag import Qwen3Reranker

DOCS = ["Paris is in France.", "Bananas.", "The Eiffel Tower.", "BM25 ranks.", "Everest.", "Spain."]


@pytest.fixture(scope="module")
def rr(tiny_reranker: str) -> Qwen3Reranker:
    return Qwen3Reranker(tiny_reranker, backend="hf")


def test_thresholds_filter_before_top_n(rr):
    scores = rr.score("capital of France?", DOCS)
    assert len(set(np.round(scores, 4))) > 3, "tiny reranker scores should spread"
    t = float(np.median(scores))
    out = rr.rerank("capital of France?", DOCS, score_threshold=t)
    assert [r.index for r in out] == [i for i in np.argsort(-scores, kind="stable") if scores[i] >= t]
    conf = np.abs(2 * scores - 1)
    c = float(np.sort(conf)[2])
    out = rr.rerank("capital of France?", DOCS, top_n=2, min_confidence=c)
    kept = [int(i) for i in np.argsort(-scores, kind="stable") if conf[i] >= c]
    assert [r.index for r in out] == kept[:2]
    assert all(r.confidence >= c for r in out)


async def test_async_thresholds_and_bad_values(rr):
    sync = rr.rerank("q", DOCS, score_threshold=0.3, min_confidence=0.1)
    assert await rr.arerank("q", DOCS, score_threshold=0.3, min_confidence=0.1) == sync
    for kw in ({"score_threshold": 1.2}, {"min_confidence": -0.5}):
        with pytest.raises(ValueError, match="must be between 0 and 1"):
            rr.rerank("q", DOCS, **kw)


def test_search_documents_min_confidence_uses_the_reranker_filter(rr, tiny_embedding):
    from qwen3_rag import FaissStore, Qwen3Embedder
    from qwen3_rag.retrieval import search_documents

    emb = Qwen3Embedder(tiny_embedding, backend="hf")
    store = FaissStore(emb.dimension, embedder=emb)
    store.add(DOCS, emb.embed_documents(DOCS), ids=[str(i) for i in range(len(DOCS))])
    conf = np.abs(2 * rr.score("capital of France?", DOCS) - 1)
    c = float(np.median(conf))
    resp = search_documents(store, emb, "capital of France?", k=len(DOCS), reranker=rr, min_confidence=c)
    assert resp.total_found == int((conf >= c).sum())
    assert sorted(r.id for r in resp.results) == [str(i) for i in range(len(DOCS)) if conf[i] >= c]
    assert all(r.confidence >= c for r in resp.results)
