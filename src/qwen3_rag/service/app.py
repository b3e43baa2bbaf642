"""``create_app``: the service's FastAPI app, assembled from its parts.

The parts live beside it: the shared :class:`~qwen3_rag.service.state.ServiceState`, the
routers (:mod:`qwen3_rag.service.routers`), the request/response models
(:mod:`~qwen3_rag.service.schemas`), the limits dependency (:mod:`~qwen3_rag.service.limits`),
the error handlers (:mod:`~qwen3_rag.service.errors`) and the middleware. This module only
puts them together and gives each app an OpenAPI schema with its own bounds.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from qwen3_rag import __version__
from qwen3_rag.embedder import Qwen3Embedder
from qwen3_rag.reranker import Qwen3Reranker
from qwen3_rag.service.errors import EXCEPTION_HANDLERS
from qwen3_rag.service.limits import document_limits
from qwen3_rag.service.middleware import AuthMiddleware, BodyLimitMiddleware, MetricsMiddleware
from qwen3_rag.service.reload import StoreWatcher
from qwen3_rag.service.routers import embeddings, health, rerank, search
from qwen3_rag.service.routers.unavailable import NO_RERANKER, NO_STORE, unavailable_router
from qwen3_rag.service.schemas import ServiceLimits
from qwen3_rag.service.state import ServiceState

__all__ = ["ServiceApp", "create_app"]


class ServiceApp(FastAPI):
    """The service's FastAPI app: its OpenAPI schema shows its own bounds (limits, models)."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            state: ServiceState = self.state.service
            self.openapi_schema = document_limits(super().openapi(), state.bounds)
        return self.openapi_schema


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Watch the store for new versions while the app runs; stop the watcher and the
    micro-batchers when it shuts down."""
    watcher: StoreWatcher | None = app.state.store_watcher
    if watcher is not None:
        watcher.start()
    yield
    if watcher is not None:
        await watcher.close()
    state: ServiceState = app.state.service
    await state.close()


def check_store(store: Any, embedder: Qwen3Embedder) -> None:
    """``TypeError`` unless ``store`` is a store, ``EmbedderMismatchError`` unless it holds
    ``embedder``'s vectors (another model or dimension)."""
    if not hasattr(store, "check_embedder"):
        raise TypeError(f"store must be a qwen3_rag.FaissStore (e.g. FaissStore.load(path)), got "
                        f"{type(store).__name__} {store!r}"[:200])
    store.check_embedder(embedder)


def create_app(
    embedder: Qwen3Embedder,
    reranker: Qwen3Reranker | None = None,
    store: Any = None,
    *,
    api_key: str | None = None,
    limits: ServiceLimits | None = None,
    embedding_model_name: str | None = None,
    reranker_model_name: str | None = None,
    docs: bool = True,
    store_poll_s: float = 2.0,
) -> FastAPI:
    """Build the service app around loaded models and an optional vector store.

    Endpoints: ``POST /v1/embeddings`` (OpenAI-compatible), ``GET /health`` and
    ``GET /metrics`` always; ``POST /rerank`` (alias ``/v1/rerank``) and ``POST /classify``
    with a reranker; ``POST /search`` with a store (a ``qwen3_rag.FaissStore``). With
    ``api_key`` every endpoint but ``/health`` and the OpenAPI docs needs
    ``Authorization: Bearer <api_key>``.

    Args:
        embedder: the query/document embedder.
        reranker: the reranker (optional).
        store: the vector store searched by ``/search`` (optional).
        api_key: the key clients must send (compared in constant time).
        limits: request bounds and micro-batching settings.
        embedding_model_name: the model id reported to clients (default: ``embedder.model``).
        reranker_model_name: likewise for the reranker.
        docs: serve the interactive docs (``/docs``, ``/redoc``: their pages load Swagger UI
            and ReDoc from a CDN); ``/openapi.json`` is served either way.
        store_poll_s: how often (seconds) to look at the store directory's ``CURRENT`` pointer:
            a new version saved there (``qwen3-rag index``, ``FaissStore.save``) is loaded in
            the background and served from the next request on (0: never; a store that was
            never saved or loaded has no directory to watch).

    Example:
        >>> from qwen3_rag import Qwen3Embedder
        >>> from qwen3_rag.testing import make_tiny_qwen3
        >>> from fastapi.testclient import TestClient
        >>> app = create_app(Qwen3Embedder(make_tiny_qwen3("/tmp/qwen3-rag-doctest-emb"), backend="hf"))
        >>> with TestClient(app) as client:
        ...     r = client.post("/v1/embeddings", json={"input": ["hello", "world"]})
        >>> r.status_code, len(r.json()["data"]), len(r.json()["data"][0]["embedding"])
        (200, 2, 64)
    """
    if store is not None:
        check_store(store, embedder)
    state = ServiceState(embedder, reranker, store, limits=limits, api_key=api_key,
                         embedding_model_name=embedding_model_name, reranker_model_name=reranker_model_name)
    app = ServiceApp(title="qwen3-rag", version=__version__, lifespan=lifespan,
                     exception_handlers=EXCEPTION_HANDLERS,
                     docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None,
                     description="Qwen3 embedding, reranking and vector search.")
    app.state.service = state
    watch = store is not None and store_poll_s > 0 and getattr(store, "path", None) is not None
    app.state.store_watcher = StoreWatcher(state, store_poll_s) if watch else None
    routers = [health.router, embeddings.router,
               # what this service was started without: a 404 that says so, not a bare "Not Found"
               rerank.router if reranker is not None
               else unavailable_router(("/rerank", "/v1/rerank", "/classify"), NO_RERANKER),
               search.router if store is not None else unavailable_router(("/search",), NO_STORE)]
    for router in routers:
        app.include_router(router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=state.limits.max_body_bytes,
                       timeout_s=state.limits.body_timeout_s)
    public = {"/health", app.docs_url, app.openapi_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    app.add_middleware(AuthMiddleware, key=state.api_key, public={p for p in public if p})
    app.add_middleware(MetricsMiddleware, metrics=state.metrics,
                       routes={getattr(r, "path", "") for router in routers for r in router.routes})
    return app
