"""``POST /search``: :func:`qwen3_rag.retrieval.search_documents` with micro-batched models.

The retrieval logic (candidates, reranking, ``min_confidence``, ranks, ``total_found``) is the
one the CLI uses; here its embedder and reranker are thin adapters that send their token ids
through the service's micro-batchers, so concurrent searches share engine calls. It runs in a
worker thread; the adapters hand work back to the event loop and wait for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends

from qwen3_rag.retrieval import search_documents
from qwen3_rag.service.auth import require_api_key
from qwen3_rag.service.errors import api_error, invalid_input
from qwen3_rag.service.limits import WithinLimits
from qwen3_rag.service.schemas import SearchRequest, SearchResponse
from qwen3_rag.service.state import ServiceState, State

router = APIRouter(tags=["search"], dependencies=[Depends(require_api_key)])

Search = Annotated[SearchRequest, Depends(WithinLimits(SearchRequest))]


class Stages:
    """Per-request stage timings (milliseconds), also observed in the service metrics."""

    def __init__(self, state: ServiceState):
        self.state = state
        self.ms: dict[str, float] = {}

    def stage(self, name: str) -> Any:
        return self.state.metrics.stage(name, self.ms)


class BatchedEmbedder:
    """The ``embed_queries`` that ``search_documents`` calls, through the micro-batcher."""

    def __init__(self, state: ServiceState, loop: asyncio.AbstractEventLoop, stages: Stages):
        self.state, self.loop, self.stages = state, loop, stages

    def embed_queries(self, queries: Sequence[str], instruction: str | None = None) -> np.ndarray:
        emb = self.state.embedder
        with self.stages.stage("embed"):
            instr = emb.query_instruction if instruction is None else instruction
            ids = emb.formatter.queries(list(queries), instr)
            return asyncio.run_coroutine_threadsafe(self.state.embed_ids(ids, None), self.loop).result()


class BatchedReranker:
    """The ``score`` that ``search_documents`` calls, through the micro-batcher."""

    def __init__(self, state: ServiceState, loop: asyncio.AbstractEventLoop, stages: Stages):
        self.state, self.loop, self.stages = state, loop, stages

    def score(self, query: str, documents: Sequence[str], instruction: str | None = None) -> np.ndarray:
        rr = self.state.reranker
        assert rr is not None
        with self.stages.stage("rerank"):
            instr = rr.instruction if instruction is None else instruction
            ids = rr.formatter.pairs([(query, d) for d in documents], instr)
            return asyncio.run_coroutine_threadsafe(self.state.score_ids(ids), self.loop).result()


class TimedStore:
    """The store, its searches timed as the ``search`` stage."""

    def __init__(self, store: Any, stages: Stages):
        self.store, self.stages = store, stages

    def search(self, *args: Any, **kwargs: Any) -> Any:
        with self.stages.stage("search"):
            return self.store.search(*args, **kwargs)


def candidates(req: SearchRequest, state: ServiceState) -> int | None:
    """How many vector hits to rerank (``None``: no reranking); 422 for options needing a reranker."""
    if req.rerank is not False and state.reranker is None:
        raise api_error(422, ["body", "rerank"], "this service has no reranker loaded", "invalid_input")
    if req.min_confidence is not None and req.rerank is False:
        raise api_error(422, ["body", "min_confidence"], "min_confidence needs rerank (confidence "
                        "comes from the reranker)", "invalid_input")
    if req.alpha is not None and req.mode != "hybrid":
        raise api_error(422, ["body", "alpha"], "alpha weighs the retrievers of mode 'hybrid'",
                        "invalid_input")
    if req.rerank is False:
        return None
    return min(4 * req.top_k, state.limits.max_documents) if req.rerank is True else req.rerank


@router.post("/search", response_model=SearchResponse)
async def search(req: Search, state: State) -> Any:
    """Dense, lexical or hybrid search over the store (``mode``). With ``rerank`` the best hits
    (``true``: 4 × ``top_k``, an integer: that many) are reranked and the ``top_k`` best by
    P(yes) returned."""
    start = time.perf_counter()
    n_candidates = candidates(req, state)
    loop = asyncio.get_running_loop()
    stages = Stages(state)
    try:
        resp = await asyncio.to_thread(
            search_documents,
            TimedStore(state.store, stages),
            BatchedEmbedder(state, loop, stages),
            req.query,
            req.top_k,
            filter=req.filter,
            score_threshold=req.score_threshold,
            reranker=BatchedReranker(state, loop, stages) if n_candidates else None,
            rerank_candidates=n_candidates,
            min_confidence=req.min_confidence,
            instruction=req.instruction,
            mode=req.mode,
            alpha=req.alpha,
        )
    except (ValueError, TypeError) as e:  # a filter the store rejects, a query too long to rerank
        raise invalid_input(e) from e
    out = resp.to_dict(req.preview_chars)
    elapsed = round((time.perf_counter() - start) * 1000.0, 3)
    return {**out, "reranked": n_candidates is not None, "timings_ms": {**stages.ms, "total": elapsed},
            "processing_time_ms": elapsed}
