"""The one rank selection (``qwen3_rag.ranking.select_results``) and its callers: the
reranker's ``score_threshold`` / ``min_confidence`` filters, search, the service, the job."""

from __future__ import annotations

import numpy as np
import pytest

from qwen3_rag import Qwen3Reranker
from qwen3_rag.ranking import Ranking, RerankResult, check_rank_options, rank_scores, select_results

DOCS = ["Paris is in France.", "Bananas.", "The Eiffel Tower.", "BM25 ranks.", "Everest.", "Spain."]


def test_best_first_with_stable_ties():
    ranking = select_results(np.array([0.5, 0.9, 0.5, 0.1, 0.9]))
    assert [r.index for r in ranking.results] == [1, 4, 0, 2, 3]
    assert ranking.total == 5 and isinstance(ranking, Ranking)
    assert ranking.results[0] == RerankResult(1, 0.9)


def test_thresholds_apply_before_top_n_and_total_counts_what_passed():
    scores = [0.95, 0.6, 0.05, 0.45, 0.8]  # confidence 0.9, 0.2, 0.9, 0.1, 0.6
    results, total = select_results(scores, top_n=2, min_confidence=0.5)
    assert [r.index for r in results] == [0, 4] and total == 3
    results, total = select_results(scores, score_threshold=0.5)
    assert [r.index for r in results] == [0, 4, 1] and total == 3
    results, total = select_results(scores, top_n=1, score_threshold=0.5, min_confidence=0.7)
    assert [r.index for r in results] == [0] and total == 1
    assert select_results(scores, top_n=0) == Ranking([], 5)
    assert select_results(np.array([], dtype=np.float32)) == Ranking([], 0)


def test_results_carry_score_and_confidence():
    (r,) = select_results(np.array([0.25], dtype=np.float32)).results
    assert type(r.score) is float and r.relevance_score == r.score == 0.25 and r.confidence == 0.5


@pytest.mark.parametrize("options", [{"top_n": -1}, {"score_threshold": 1.2}, {"min_confidence": -0.5}])
def test_bad_options(options):
    with pytest.raises(ValueError):
        check_rank_options(**options)
    with pytest.raises(ValueError):
        select_results([0.5], **options)


def test_rank_scores_is_the_results_alone():
    scores = np.array([0.2, 0.9, 0.55])
    assert rank_scores(scores, 2, min_confidence=0.5) == select_results(scores, 2, min_confidence=0.5).results


def test_every_caller_selects_through_the_one_function():
    import qwen3_rag.rerank_job as rerank_job
    import qwen3_rag.reranker as reranker
    import qwen3_rag.retrieval as retrieval
    from qwen3_rag import RerankResult as top_level_result
    from qwen3_rag.service import select_results as service_select
    from qwen3_rag.service.routers import rerank as rerank_route

    assert reranker.rank_scores is rank_scores and reranker.RerankResult is RerankResult is top_level_result
    assert reranker.check_rank_options is check_rank_options
    for module in (reranker, rerank_job, retrieval, rerank_route):
        assert module.select_results is select_results, module.__name__
    assert service_select is select_results


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
    with pytest.raises(ValueError, match="min_confidence must be between 0 and 1"):
        search_documents(store, emb, "q", reranker=rr, min_confidence=2.0)
