"""``GET /health`` (no API key needed; details only with it) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from qwen3_rag import __version__
from qwen3_rag.service.auth import require_api_key
from qwen3_rag.service.middleware import key_matches
from qwen3_rag.service.state import State

router = APIRouter(tags=["service"])


@router.get("/health")
async def health(request: Request, state: State) -> dict[str, Any]:
    """Liveness and version (no API key needed); with the key (or on a service without one)
    also the model ids, backends and the index served."""
    minimal = {"status": "ok", "service": "qwen3-rag", "version": __version__}
    if state.api_key is not None and not key_matches(request.scope["headers"], state.api_key):
        return minimal
    embedder, reranker = state.embedder, state.reranker
    return {
        **minimal,
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
