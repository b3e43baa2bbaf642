"""The FastAPI app: ``/search``, ``/rerank``, ``/v1/embeddings``, ``/classify``, ``/health``, ``/metrics``."""

import asyncio
import base64
import contextlib
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException

from qwen3_rag import __version__
from qwen3_rag.embedder import MIN_DIMENSIONS, Qwen3Embedder
from qwen3_rag.engine.base import l2_normalize
from qwen3_rag.reranker import Qwen3Reranker, RerankResult, rank_scores
from qwen3_rag.service.batcher import MicroBatcher
from qwen3_rag.service.metrics import ServiceMetrics
from qwen3_rag.service.middleware import BodyLimitMiddleware, MetricsMiddleware
from qwen3_rag.service.schemas import (
    SIZE_ERRORS,
    TOO_LARGE,
    ServiceLimits,
    build_models,
    parse_inputs,
)

logger = logging.getLogger("qwen3_rag")


def select_results(
    scores: np.ndarray,
    top_n: int | None = None,
    score_threshold: float | None = None,
    min_confidence: float | None = None,
) -> tuple[list[RerankResult], int]:
    """Best-first results passing the thresholds, cut to ``top_n``; also how many passed.

    Example:
        >>> res, total = select_results(np.array([0.2, 0.9, 0.55]), top_n=1, min_confidence=0.5)
        >>> [(r.index, r.score) for r in res], total
        ([(1, 0.9)], 2)
    """
    results = rank_scores(scores, score_threshold=score_threshold, min_confidence=min_confidence)
    return (results if top_n is None else results[:top_n]), len(results)


def _error(status: int, loc: Sequence[Any], msg: str, type_: str) -> HTTPException:
    return HTTPException(status, detail=[{"loc": list(loc), "msg": msg, "type": type_}])


def _input_error(loc: Sequence[Any], e: PydanticCustomError) -> HTTPException:
    return _error(413 if e.type == TOO_LARGE else 422, loc, e.message(), e.type)


def _format_error(e: Exception) -> HTTPException:
    return _error(422, ["body"], str(e), "invalid_input")


def _unavailable(app: FastAPI, paths: Sequence[str], message: str, auth: Any) -> None:
    """``POST`` routes, left out of the API schema, that answer 404 with ``message`` (behind the
    same API key as the others)."""

    async def answer() -> None:
        raise _error(404, ["path"], message, "not_available")

    for path in paths:
        app.post(path, include_in_schema=False, dependencies=auth)(answer)


class _Service:
    """What the endpoints share: models, engines' micro-batchers, metrics."""

    def __init__(
        self,
        embedder: Qwen3Embedder,
        reranker: Qwen3Reranker | None,
        store: Any,
        limits: ServiceLimits,
        embedding_model_name: str,
        reranker_model_name: str | None,
    ):
        self.embedder = embedder
        self.reranker = reranker
        self.store = store
        self.limits = limits
        self.embedding_model_name = embedding_model_name
        self.reranker_model_name = reranker_model_name
        self.metrics = ServiceMetrics()
        wait = limits.batch_wait_ms / 1000.0
        self.embed_batcher = MicroBatcher(
            embedder.engine.embed, max_items=limits.max_batch_items, max_wait_s=wait,
            on_batch=lambda r, n, s: self.metrics.on_batch("embedding", r, n, s),
        )
        self.rerank_batcher = (
            MicroBatcher(
                reranker.engine.score, max_items=limits.max_batch_items, max_wait_s=wait,
                on_batch=lambda r, n, s: self.metrics.on_batch("reranker", r, n, s),
            )
            if reranker is not None
            else None
        )

    async def embed_ids(self, ids: list[list[int]], dimensions: int | None) -> np.ndarray:
        vecs = np.asarray(await self.embed_batcher.submit(ids), dtype=np.float32)
        dims = dimensions or self.embedder.dimensions
        if dims is not None and dims < vecs.shape[1]:
            vecs = l2_normalize(vecs[:, :dims])
        return vecs

    async def score_ids(self, ids: list[list[int]]) -> np.ndarray:
        assert self.rerank_batcher is not None
        return np.asarray(await self.rerank_batcher.submit(ids), dtype=np.float32)

    async def rerank_ids(self, query: str, docs: list[str], instruction: str | None) -> list[list[int]]:
        assert self.reranker is not None
        instr = self.reranker.instruction if instruction is None else instruction
        try:
            return await asyncio.to_thread(self.reranker.formatter.pairs, [(query, d) for d in docs], instr)
        except ValueError as e:  # query + instruction longer than max_length
            raise _format_error(e) from e

    def index_info(self) -> dict[str, Any] | None:
        if self.store is None:
            return None
        return {"size": len(self.store), "dimension": self.store.dim}

    async def close(self) -> None:
        await self.embed_batcher.close()
        if self.rerank_batcher is not None:
            await self.rerank_batcher.close()


def _auth_dependency(api_key: str | None) -> Any:
    expected = api_key.encode() if api_key else None

    async def check(request: Request) -> None:
        if expected is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            raise HTTPException(401, detail="invalid or missing API key (Authorization: Bearer <key>)",
                                headers={"WWW-Authenticate": "Bearer"})

    return check


def create_app(
    embedder: Qwen3Embedder,
    reranker: Qwen3Reranker | None = None,
    store: Any = None,
    *,
    api_key: str | None = None,
    limits: ServiceLimits | None = None,
    embedding_model_name: str | None = None,
    reranker_model_name: str | None = None,
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
    limits = limits or ServiceLimits()
    if store is not None:
        if not hasattr(store, "check_embedder"):
            raise TypeError(f"store must be a qwen3_rag.FaissStore (e.g. FaissStore.load(path)), got "
                            f"{type(store).__name__} {store!r}"[:200])
        store.check_embedder(embedder)  # EmbedderMismatchError: another model or dimension
    svc = _Service(embedder, reranker, store, limits, embedding_model_name or embedder.model,
                   (reranker_model_name or reranker.model) if reranker is not None else None)
    M = build_models(
        limits, embedder.dimension, min(MIN_DIMENSIONS, embedder.dimension),
        embed_tokens=embedder.max_length, embed_vocab=len(embedder.tokenizer),
        rerank_tokens=reranker.max_length if reranker else 1,
        rerank_vocab=len(reranker.tokenizer) if reranker else 1,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await svc.close()

    app = FastAPI(title="qwen3-rag", version=__version__, lifespan=lifespan,
                  description="Qwen3 embedding, reranking and vector search.")
    app.state.service = svc
    auth = [Depends(_auth_dependency(api_key))]

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # never echo the input back: it may be huge or not encodable
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        status = 413 if any(e["type"] in SIZE_ERRORS for e in errors) else 422
        return JSONResponse({"detail": errors}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # a body FastAPI could not parse (e.g. a wrong content type)
            detail = [{"loc": ["body"], "msg": str(exc.detail), "type": "invalid_body"}]
            return JSONResponse({"detail": detail}, status_code=422)
        return await http_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        from qwen3_rag.engine.remote import RemoteError

        if isinstance(exc, RemoteError):
            return JSONResponse({"detail": f"model server error: {exc}"}, status_code=502)
        logger.exception("qwen3_rag: internal error on %s", request.url.path)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    @app.get("/health", tags=["service"])
    async def health() -> dict[str, Any]:
        """Liveness, model ids, backends and index size (no API key needed)."""
        return {
            "status": "ok",
            "service": "qwen3-rag",
            "version": __version__,
            "backend": embedder.backend,
            "embedding": {"model": svc.embedding_model_name, "dimension": embedder.dimension,
                          "max_length": embedder.max_length, "backend": embedder.backend},
            "reranker": None if reranker is None else {
                "model": svc.reranker_model_name, "max_length": reranker.max_length,
                "backend": reranker.backend},
            "index": svc.index_info(),
        }

    @app.get("/metrics", tags=["service"], dependencies=auth, response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics: requests, latencies per endpoint and stage, engine batches."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/embeddings", tags=["embeddings"], dependencies=auth, response_model=M.EmbeddingResponse)
    async def embeddings(req: M.EmbeddingRequest) -> Any:  # type: ignore[name-defined]
        """OpenAI-compatible embeddings. Texts are documents unless ``instruction`` (or
        ``input_type="query"``) makes them queries; token-id inputs are embedded as given."""
        tok = embedder.tokenizer
        try:
            texts, ids = parse_inputs(req.input, max_inputs=limits.max_inputs, max_chars=limits.max_chars,
                                      max_tokens=embedder.max_length, vocab_size=len(tok))
        except PydanticCustomError as e:
            raise _input_error(["body", "input"], e) from e
        timings: dict[str, float] = {}
        if texts is not None:
            instr = req.instruction
            if instr is None and req.input_type == "query":
                instr = embedder.query_instruction
            fmt = embedder.formatter
            with svc.metrics.stage("tokenize", timings):
                if instr is None:
                    ids = await asyncio.to_thread(fmt.documents, texts)
                else:
                    try:
                        ids = await asyncio.to_thread(fmt.queries, texts, instr)
                    except ValueError as e:  # an instruction that leaves no room for the query
                        raise _format_error(e) from e
        elif req.instruction is not None or req.input_type == "query":
            raise _error(422, ["body", "instruction"], "instruction and input_type='query' apply to text "
                         "inputs; token ids are embedded as given", "invalid_input")
        assert ids is not None
        with svc.metrics.stage("embed", timings):
            vecs = await svc.embed_ids(ids, req.dimensions)
        if req.encoding_format == "base64":
            items: list[Any] = [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vecs]
        else:
            items = vecs.tolist()
        n_tokens = sum(len(x) for x in ids)
        return JSONResponse({
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(items)],
            "model": svc.embedding_model_name,
            "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
        })

    if reranker is not None:

        @app.post("/rerank", tags=["rerank"], dependencies=auth, response_model=M.RerankResponse)
        @app.post("/v1/rerank", tags=["rerank"], dependencies=auth, response_model=M.RerankResponse,
                  include_in_schema=False)
        async def rerank(req: M.RerankRequest) -> Any:  # type: ignore[name-defined]
            """Score documents against a query (P(yes)), best first: the Cohere/Jina/vLLM shape."""
            start = time.perf_counter()
            with svc.metrics.stage("tokenize"):
                ids = await svc.rerank_ids(req.query, req.documents, req.instruction)
            with svc.metrics.stage("rerank"):
                scores = await svc.score_ids(ids)
            results, total = select_results(scores, req.top_n, req.score_threshold, req.min_confidence)
            return {
                "id": f"rerank-{uuid.uuid4().hex}",
                "model": svc.reranker_model_name,
                "results": [
                    {"index": r.index, "relevance_score": r.relevance_score, "confidence": r.confidence,
                     "document": {"text": req.documents[r.index]} if req.return_documents else None}
                    for r in results
                ],
                "total_found": total,
                "processing_time_ms": round((time.perf_counter() - start) * 1000.0, 3),
                "usage": {"total_tokens": sum(len(x) for x in ids)},
            }

        @app.post("/classify", tags=["rerank"], dependencies=auth, response_model=M.ClassifyResponse)
        async def classify(req: M.ClassifyRequest) -> Any:  # type: ignore[name-defined]
            """vLLM-compatible ``/classify`` over complete reranker prompts given as token ids;
            ``probs`` is ``[P(yes)]``. This is what ``backend="remote"`` rerankers call."""
            try:
                _, ids = parse_inputs(req.input, max_inputs=limits.max_inputs, max_chars=limits.max_chars,
                                      max_tokens=reranker.max_length, vocab_size=len(reranker.tokenizer))
            except PydanticCustomError as e:
                raise _input_error(["body", "input"], e) from e
            if ids is None:
                raise _error(422, ["body", "input"], "/classify takes token ids (complete reranker prompts); "
                             "use /rerank for text", "invalid_input")
            with svc.metrics.stage("rerank"):
                scores = await svc.score_ids(ids)
            n_tokens = sum(len(x) for x in ids)
            return {
                "id": f"classify-{uuid.uuid4().hex}",
                "object": "list",
                "model": svc.reranker_model_name,
                "data": [{"index": i, "label": "yes", "probs": [float(p)], "num_classes": 1}
                         for i, p in enumerate(scores)],
                "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
            }

    if store is not None:
        from qwen3_rag.service.search import add_search_route

        add_search_route(app, svc, M, auth)
    # what this service was started without: a 404 that says so, not a bare "Not Found"
    if reranker is None:
        _unavailable(app, ("/rerank", "/v1/rerank", "/classify"),
                     "this service has no reranker loaded (started with --no-reranker)", auth)
    if store is None:
        _unavailable(app, ("/search",), "this service has no vector store (start it with --store DIR)", auth)

    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=svc.metrics)
    return app
