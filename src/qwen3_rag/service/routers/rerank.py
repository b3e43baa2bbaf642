"""``POST /rerank`` (alias ``/v1/rerank``) and ``POST /classify``: the service's reranker.

``/rerank`` takes a query and texts (the Cohere/Jina/vLLM shape) and selects its results with
:func:`qwen3_rag.ranking.select_results`; ``/classify`` scores complete prompts given as token
ids, as vLLM's does (what ``backend="remote"`` rerankers call).
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from qwen3_rag.ranking import select_results
from qwen3_rag.service.auth import require_api_key
from qwen3_rag.service.errors import invalid_input
from qwen3_rag.service.limits import WithinLimits
from qwen3_rag.service.schemas import ClassifyRequest, ClassifyResponse, RerankRequest, RerankResponse
from qwen3_rag.service.state import State

router = APIRouter(tags=["rerank"], dependencies=[Depends(require_api_key)])

Rerank = Annotated[RerankRequest, Depends(WithinLimits(RerankRequest))]
Classify = Annotated[ClassifyRequest, Depends(WithinLimits(ClassifyRequest))]


@router.post("/rerank", response_model=RerankResponse)
@router.post("/v1/rerank", response_model=RerankResponse)
async def rerank(req: Rerank, state: State) -> Any:
    """Score documents against a query (P(yes)), best first: the Cohere/Jina/vLLM shape."""
    start = time.perf_counter()
    with state.metrics.stage("tokenize"):
        try:
            ids = await state.rerank_ids(req.query, req.documents, req.instruction)
        except ValueError as e:  # query + instruction longer than max_length
            raise invalid_input(e) from e
    with state.metrics.stage("rerank"):
        scores = await state.score_ids(ids)
    results, total = select_results(scores, req.top_n, req.score_threshold, req.min_confidence)
    return {
        "id": f"rerank-{uuid.uuid4().hex}",
        "model": state.reranker_model_name,
        "results": [
            {"index": r.index, "relevance_score": r.relevance_score, "confidence": r.confidence,
             "document": {"text": req.documents[r.index]} if req.return_documents else None}
            for r in results
        ],
        "total_found": total,
        "processing_time_ms": round((time.perf_counter() - start) * 1000.0, 3),
        "usage": {"total_tokens": sum(len(x) for x in ids)},
    }


@router.post("/classify", response_model=ClassifyResponse)
async def classify(req: Classify, state: State) -> Any:
    """vLLM-compatible ``/classify`` over complete reranker prompts given as token ids;
    ``probs`` is ``[P(yes)]``. This is what ``backend="remote"`` rerankers call."""
    ids = req.input.ids
    assert ids is not None  # ClassifyRequest takes token ids only
    with state.metrics.stage("rerank"):
        scores = await state.score_ids(ids)
    n_tokens = sum(len(x) for x in ids)
    return {
        "id": f"classify-{uuid.uuid4().hex}",
        "object": "list",
        "model": state.reranker_model_name,
        "data": [{"index": i, "label": "yes", "probs": [float(p)], "num_classes": 1}
                 for i, p in enumerate(scores)],
        "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
    }
