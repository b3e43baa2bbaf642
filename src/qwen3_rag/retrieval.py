"""Search a store for a text query (dense, lexical or hybrid), optionally reranked (CLI, service).

This module owns :func:`search_documents` and its result types, :class:`SearchResult` and
:class:`SearchResponse`; the CLI's ``qwen3-rag search`` and the service's ``/search`` both
answer through it.

Example:
    >>> import numpy as np
    >>> from qwen3_rag import FaissStore, Qwen3Embedder
    >>> from qwen3_rag.retrieval import search_documents
    >>> from qwen3_rag.testing import make_tiny_qwen3
    >>> emb = Qwen3Embedder(make_tiny_qwen3("/tmp/qwen3-rag-doctest-emb"), backend="hf")
    >>> store = FaissStore(emb.dimension, embedder=emb)
    >>> docs = ["Paris is the capital of France.", "Bananas are yellow."]
    >>> _ = store.add(docs, emb.embed_documents(docs), ids=["paris", "banana"])
    >>> resp = search_documents(store, emb, "capital of France?", k=1)
    >>> resp.total_found, len(resp.results), resp.results[0].text_length in (31, 19)
    (1, 1, True)
    >>> hit = search_documents(store, emb, "bananas", k=1, mode="hybrid").results[0]
    >>> hit.id, hit.sources["lexical"]
    ('banana', 1)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qwen3_rag.ranking import Ranking, check_rank_options, select_results
from qwen3_rag.store.modes import SEARCH_MODES


@dataclass
class SearchResult:
    """One result: the document, its search score (cosine, BM25 or fused, by mode), the
    retrievers that found it with its rank there and, when reranked, P(yes) and confidence."""

    rank: int
    id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    relevance_score: float | None = None
    confidence: float | None = None
    sources: dict[str, int] = field(default_factory=dict)

    @property
    def text_length(self) -> int:
        return len(self.text)

    def to_dict(self, preview_chars: int | None = None) -> dict[str, Any]:
        """JSON-ready; ``text`` is cut to ``preview_chars`` (``text_length`` stays the full length);
        ``relevance_score`` and ``confidence`` are ``None`` unless reranked."""
        text = self.text if preview_chars is None else self.text[:preview_chars]
        out: dict[str, Any] = {
            "rank": self.rank, "id": self.id, "score": self.score, "text": text,
            "text_length": self.text_length, "truncated": len(text) < self.text_length,
            "metadata": self.metadata, "sources": self.sources,
            "relevance_score": self.relevance_score,  # None unless reranked
            "confidence": self.confidence,
        }
        return out


@dataclass
class SearchResponse:
    """Results, best first; ``total_found`` counts the candidates that passed every threshold."""

    query: str
    results: list[SearchResult]
    total_found: int
    processing_time_ms: float
    reranked: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)
    """Milliseconds of ``embed``, ``search``, ``rerank`` (when reranked) and ``total``."""
    mode: str = "dense"
    """The search mode: ``dense``, ``lexical`` or ``hybrid``."""

    def to_dict(self, preview_chars: int | None = None) -> dict[str, Any]:
        """The JSON document of ``qwen3-rag search --json`` and the service's ``POST /search``."""
        return {
            "query": self.query,
            "mode": self.mode,
            "results": [r.to_dict(preview_chars) for r in self.results],
            "total_found": self.total_found,
            "reranked": self.reranked,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "processing_time_ms": round(self.processing_time_ms, 3),
        }


def search_documents(
    store: Any,
    embedder: Any,
    query: str,
    k: int = 5,
    *,
    filter: Mapping[str, Any] | None = None,
    score_threshold: float | None = None,
    reranker: Any = None,
    rerank_candidates: int | None = None,
    min_confidence: float | None = None,
    instruction: str | None = None,
    mode: str = "dense",
    alpha: float | None = None,
) -> SearchResponse:
    """Search ``store`` for ``query`` (embedded, but for lexical search); with a ``reranker``,
    rerank the candidates.

    Args:
        k: results returned.
        filter, score_threshold: passed to :meth:`FaissStore.search` (the threshold is on the
            mode's score: cosine, BM25 or fused).
        mode, alpha: the search mode (``"dense"``, ``"lexical"``, ``"hybrid"``) and hybrid
            search's dense weight (``None``: reciprocal rank fusion); see :meth:`FaissStore.search`.
        reranker: a ``Qwen3Reranker`` (anything with its ``score``); the ``rerank_candidates``
            (default ``4 * k``) best hits (of the mode: fused ones in hybrid mode) are scored and
            the ``k`` best by P(yes) are returned (:func:`qwen3_rag.ranking.select_results`).
        min_confidence: with a reranker, drop results whose confidence ``|2p − 1|`` is below.
        instruction: query instruction for the embedder (and the reranker).
    """
    if not isinstance(query, str) or not query.strip():
        raise ValueError("the query must be a non-empty string")
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    check_rank_options(min_confidence=min_confidence)
    if mode not in SEARCH_MODES:  # before the query is embedded
        raise ValueError(f"mode must be one of {SEARCH_MODES}, got {mode!r}")
    started = time.perf_counter()
    n = max(k, rerank_candidates or 4 * k) if reranker is not None else k
    qv = embedder.embed_queries([query], instruction) if mode != "lexical" else None
    timings = {"embed": (time.perf_counter() - started) * 1000.0}
    text = {"query": query} if mode != "dense" else {}
    hits = store.search(qv, k=n, filter=filter, score_threshold=score_threshold, mode=mode, alpha=alpha,
                        **text)[0]
    timings["search"] = (time.perf_counter() - started) * 1000.0 - timings["embed"]
    if reranker is None:
        results = [SearchResult(i + 1, h.id, h.score, h.text, h.metadata, sources=h.sources)
                   for i, h in enumerate(hits)]
        total = len(hits)
    else:
        ranking = Ranking([], 0)
        if hits:
            t0 = time.perf_counter()
            scores = reranker.score(query, [h.text for h in hits], instruction)
            timings["rerank"] = (time.perf_counter() - t0) * 1000.0
            ranking = select_results(scores, k, min_confidence=min_confidence)
        total = ranking.total
        results = [
            SearchResult(i + 1, hits[r.index].id, hits[r.index].score, hits[r.index].text,
                         hits[r.index].metadata, r.relevance_score, r.confidence, hits[r.index].sources)
            for i, r in enumerate(ranking.results)
        ]
    elapsed = (time.perf_counter() - started) * 1000.0
    return SearchResponse(query, results[:k], total, elapsed, reranked=reranker is not None,
                          timings_ms={**timings, "total": elapsed}, mode=mode)


__all__ = ["SearchResponse", "SearchResult", "search_documents"]
