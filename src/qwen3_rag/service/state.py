"""What the service's routes share: :class:`ServiceState`, handed to them by FastAPI dependency.

One :class:`ServiceState` per app (on ``app.state.service``) holds the models, the optional
store, the limits, the API key, the metrics and the engines' micro-batchers (one lane per call an
engine computes at once: :mod:`qwen3_rag.service.lanes`); routes declare
``state: State`` to get it.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, Request

from qwen3_rag.embedder import MIN_DIMENSIONS, Qwen3Embedder
from qwen3_rag.engine.base import l2_normalize
from qwen3_rag.reranker import Qwen3Reranker
from qwen3_rag.service.errors import api_error
from qwen3_rag.service.lanes import Lanes, engine_parallelism
from qwen3_rag.service.metrics import ServiceMetrics
from qwen3_rag.service.schemas import TOO_LARGE, RequestBounds, ServiceLimits


class ServiceState:
    """The models, store, limits, metrics and micro-batchers of one service.

    Args:
        embedder: the query/document embedder.
        reranker: the reranker (``None``: the service has none).
        store: the vector store ``/search`` searches (``None``: none).
        limits: request bounds and micro-batching settings.
        api_key: the key clients must send (``None``: none needed).
        embedding_model_name, reranker_model_name: the model ids reported to clients
            (default: the models' own).
    """

    def __init__(
        self,
        embedder: Qwen3Embedder,
        reranker: Qwen3Reranker | None = None,
        store: Any = None,
        *,
        limits: ServiceLimits | None = None,
        api_key: str | None = None,
        embedding_model_name: str | None = None,
        reranker_model_name: str | None = None,
    ):
        self.embedder = embedder
        self.reranker = reranker
        self.store = store
        self.limits = limits = limits or ServiceLimits()
        self.api_key = check_api_key(api_key)
        self.embedding_model_name = embedding_model_name or embedder.model
        self.reranker_model_name = (reranker_model_name or reranker.model) if reranker is not None else None
        self.bounds = RequestBounds.of(
            limits, dimension=embedder.dimension, min_dimensions=min(MIN_DIMENSIONS, embedder.dimension),
            embed_tokens=embedder.max_length, embed_vocab=len(embedder.tokenizer),
            rerank_tokens=reranker.max_length if reranker else 1,
            rerank_vocab=len(reranker.tokenizer) if reranker else 1,
        )
        self.metrics = ServiceMetrics()
        self.embed_batcher = self._lanes(embedder.engine, embedder.engine.embed, "embedding")
        self.rerank_batcher = None
        if reranker is not None:
            self.rerank_batcher = self._lanes(reranker.engine, reranker.engine.score, "reranker")

    def _lanes(self, engine: Any, fn: Any, model: str) -> Lanes:
        """Micro-batched calls of ``fn``, as many at once as ``engine`` computes (its pool's workers)."""
        limits = self.limits
        return Lanes(fn, lanes=engine_parallelism(engine), max_items=limits.max_batch_items,
                     max_wait_s=limits.batch_wait_ms / 1000.0, max_tokens=limits.max_batch_tokens,
                     on_batch=functools.partial(self.metrics.on_batch, model))

    async def embed_ids(self, ids: list[list[int]], dimensions: int | None) -> np.ndarray:
        """Vectors of token-id sequences (micro-batched), cut to ``dimensions`` and re-normalized;
        413 beyond the request token budget."""
        self.check_tokens(ids)
        vecs = np.asarray(await self.embed_batcher.submit(ids), dtype=np.float32)
        dims = dimensions or self.embedder.dimensions
        if dims is not None and dims < vecs.shape[1]:
            vecs = l2_normalize(vecs[:, :dims])
        return vecs

    async def score_ids(self, ids: list[list[int]]) -> np.ndarray:
        """P(yes) of complete reranker prompts given as token ids (micro-batched); 413 beyond
        the request token budget."""
        assert self.rerank_batcher is not None, "the service has no reranker"
        self.check_tokens(ids)
        return np.asarray(await self.rerank_batcher.submit(ids), dtype=np.float32)

    def check_tokens(self, ids: list[list[int]]) -> None:
        """413 when ``ids`` hold more tokens than one request may have a model process
        (``ServiceLimits.max_request_tokens``)."""
        n = sum(len(x) for x in ids)
        budget = self.limits.max_request_tokens
        if n > budget:
            raise api_error(413, ["body"], f"the request makes the model process {n:,} tokens; at most "
                            f"{budget:,} are allowed per request (max_request_tokens)", TOO_LARGE)

    async def rerank_ids(self, query: str, docs: list[str], instruction: str | None) -> list[list[int]]:
        """The reranker prompts of ``query`` with each document, as token ids.

        Raises ``ValueError`` when the query and instruction leave no room for a document.
        """
        assert self.reranker is not None, "the service has no reranker"
        instr = self.reranker.instruction if instruction is None else instruction
        return await asyncio.to_thread(self.reranker.formatter.pairs, [(query, d) for d in docs], instr)

    def index_info(self) -> dict[str, Any] | None:
        """Size, dimension and version of the store served (``None`` without one)."""
        store = self.store
        if store is None:
            return None
        return {"size": len(store), "dimension": store.dim, "version": getattr(store, "version", None)}

    async def close(self) -> None:
        """Stop the micro-batchers."""
        await self.embed_batcher.close()
        if self.rerank_batcher is not None:
            await self.rerank_batcher.close()


def check_api_key(api_key: str | None) -> bytes | None:
    """The key as the bytes a client's header carries; ``ValueError`` for a key no header can
    carry (HTTP headers are ASCII: a key with other characters could never match)."""
    if not api_key:
        return None
    if not api_key.isascii() or not api_key.isprintable() or api_key != api_key.strip():
        raise ValueError("the API key must be printable ASCII without surrounding spaces (an HTTP "
                         "header cannot carry other characters, so no client could send it)")
    return api_key.encode()


def service_state(request: Request) -> ServiceState:
    """FastAPI dependency: the :class:`ServiceState` of the app serving ``request``."""
    state: ServiceState = request.app.state.service
    return state


State = Annotated[ServiceState, Depends(service_state)]
"""A route parameter annotated ``State`` receives the app's :class:`ServiceState`."""
