"""``GET /health`` (no API key needed) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from qwen3_rag import __version__
from qwen3_rag.service.auth import require_api_key
from qwen3_rag.service.state import State

router = APIRouter(tags=["service"])


@router.get("/health")
async def health(state: State) -> dict[str, Any]:
    """Liveness, model ids, backends and index size (no API key needed)."""
    embedder, reranker = state.embedder, state.reranker
    return {
        "status": "ok",
        "service": "qwen3-rag",
        "version": __version__,
        "backend": embedder.backend,
        "embedding": {"model": state.embedding_model_name, "dimension": embedder.dimension,
                      "max_length": embedder.max_length, "backend": embedder.backend},
        "reranker": None if reranker is None else {
            "model": state.reranker_model_name, "max_length": reranker.max_length,
            "backend": reranker.backend},
        "index": state.index_info(),
    }


@router.get("/metrics", dependencies=[Depends(require_api_key)], response_class=Response)
async def metrics(state: State) -> Response:
    """Prometheus metrics: requests, latencies per endpoint and stage, engine batches."""
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
