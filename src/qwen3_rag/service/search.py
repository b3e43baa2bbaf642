"""``POST /search``: :func:`qwen3_rag.retrieval.search_documents` with micro-batched models.

The retrieval logic (candidates, reranking, ``min_confidence``, ranks, ``total_found``) is the
one the CLI uses; here its embedder and reranker are thin adapters that send their token ids
through the service's micro-batchers, so concurrent searches share engine calls. It runs in a
worker thread; the adapters hand work back to the event loop and wait for it.
"""

import asyncio
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import FastAPI

from qwen3_rag.reranker import RerankResult, rank_scores
from qwen3_rag.service.app import _error, _format_error

if TYPE_CHECKING:
    from qwen3_rag.service.app import _Service


class _Stages:
    """Per-request stage timings (milliseconds), also observed in the service metrics."""

    def __init__(self, svc: "_Service"):
        self.svc = svc
        self.ms: dict[str, float] = {}

    def stage(self, name: str) -> Any:
        return self.svc.metrics.stage(name, self.ms)


class _BatchedEmbedder:
    """The ``embed_queries`` that ``search_documents`` calls, through the micro-batcher."""

    def __init__(self, svc: "_Service", loop: asyncio.AbstractEventLoop, stages: _Stages):
        self.svc, self.loop, self.stages = svc, loop, stages

    def embed_queries(self, queries: Sequence[str], instruction: str | None = None) -> np.ndarray:
        emb = self.svc.embedder
        with self.stages.stage("embed"):
            instr = emb.query_instruction if instruction is None else instruction
            ids = emb.formatter.queries(list(queries), instr)
            return asyncio.run_coroutine_threadsafe(self.svc.embed_ids(ids, None), self.loop).result()


class _BatchedReranker:
    """The ``rerank`` that ``search_documents`` calls, through the micro-batcher."""

    def __init__(self, svc: "_Service", loop: asyncio.AbstractEventLoop, stages: _Stages):
        self.svc, self.loop, self.stages = svc, loop, stages

    def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None,
               instruction: str | None = None, *, score_threshold: float | None = None,
               min_confidence: float | None = None) -> list[RerankResult]:
        rr = self.svc.reranker
        assert rr is not None
        with self.stages.stage("rerank"):
            instr = rr.instruction if instruction is None else instruction
            ids = rr.formatter.pairs([(query, d) for d in documents], instr)
            scores = asyncio.run_coroutine_threadsafe(self.svc.score_ids(ids), self.loop).result()
        return rank_scores(scores, top_n, score_threshold=score_threshold, min_confidence=min_confidence)


class _TimedStore:
    def __init__(self, store: Any, stages: _Stages):
        self.store, self.stages = store, stages

    def search(self, *args: Any, **kwargs: Any) -> Any:
        with self.stages.stage("search"):
            return self.store.search(*args, **kwargs)


def add_search_route(app: FastAPI, svc: "_Service", M: SimpleNamespace, auth: list[Any]) -> None:
    """Register ``POST /search`` on ``app``."""
    from qwen3_rag.retrieval import search_documents

    @app.post("/search", tags=["search"], dependencies=auth, response_model=M.SearchResponse)
    async def search(req: M.SearchRequest) -> Any:  # type: ignore[name-defined]
        """Vector search over the store. With ``rerank`` the best vector hits (``true``: 4 ×
        ``top_k``, an integer: that many) are reranked and the ``top_k`` best by P(yes) returned."""
        start = time.perf_counter()
        if req.rerank is not False and svc.reranker is None:
            raise _error(422, ["body", "rerank"], "this service has no reranker loaded", "invalid_input")
        if req.min_confidence is not None and req.rerank is False:
            raise _error(422, ["body", "min_confidence"], "min_confidence needs rerank (confidence "
                         "comes from the reranker)", "invalid_input")
        candidates = None
        if req.rerank is not False:
            candidates = min(4 * req.top_k, svc.limits.max_documents) if req.rerank is True else req.rerank
        loop = asyncio.get_running_loop()
        stages = _Stages(svc)
        try:
            resp = await asyncio.to_thread(
                search_documents,
                _TimedStore(svc.store, stages),
                _BatchedEmbedder(svc, loop, stages),
                req.query,
                req.top_k,
                filter=req.filter,
                score_threshold=req.score_threshold,
                reranker=_BatchedReranker(svc, loop, stages) if candidates else None,
                rerank_candidates=candidates,
                min_confidence=req.min_confidence,
                instruction=req.instruction,
            )
        except (ValueError, TypeError) as e:  # a filter the store rejects, a query too long to rerank
            raise _format_error(e) from e
        out = resp.to_dict(req.preview_chars)
        elapsed = (time.perf_counter() - start) * 1000.0
        timings = {**stages.ms, "total": round(elapsed, 3)}
        return {**out, "reranked": candidates is not None, "timings_ms": timings,
                "processing_time_ms": round(elapsed, 3)}
