"""``serve()`` and the ``qwen3-rag serve`` subcommand."""

from __future__ import annotations

import argparse
import json
import logging
import os
from typing import Any

from qwen3_rag.formats import DEFAULT_EMBEDDING_MODEL, DEFAULT_RERANKER_MODEL
from qwen3_rag.service.schemas import ServiceLimits

logger = logging.getLogger("qwen3_rag")

LOOPBACK = ("127.0.0.1", "localhost", "::1")
API_KEY_ENV = "QWEN3_RAG_API_KEY"


def serve(
    embedder: Any,
    reranker: Any = None,
    store: Any = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    limits: ServiceLimits | None = None,
    log_level: str = "info",
    **app_options: Any,
) -> None:
    """Run the service with uvicorn until interrupted (binds 127.0.0.1 unless told otherwise).

    ``app_options`` go to :func:`qwen3_rag.service.create_app`.
    """
    import uvicorn

    from qwen3_rag.service.app import create_app

    if host not in LOOPBACK and not api_key:
        logger.warning("qwen3_rag: serving on %s without an API key: anyone who reaches it can use it", host)
    app = create_app(embedder, reranker, store, api_key=api_key, limits=limits, **app_options)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "serve", help="run the HTTP service (search, rerank, OpenAI-compatible embeddings)",
        description="Serve /search (with --store), /rerank, /v1/embeddings, /health and /metrics.",
    )
    p.add_argument("--store", metavar="DIR", help="vector store directory (FaissStore) for /search")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=os.environ.get(API_KEY_ENV),
                   help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV})")
    p.add_argument("--model", help="embedding model (default: the store's, else "
                   f"{DEFAULT_EMBEDDING_MODEL})")
    p.add_argument("--reranker-model", default=DEFAULT_RERANKER_MODEL,
                   help="reranker model, or 'none' to serve without one")
    p.add_argument("--backend", default="auto", choices=["auto", "hf", "vllm", "remote"])
    p.add_argument("--max-length", type=int, default=None, help="longest sequence in tokens")
    p.add_argument("--option", action="append", type=_option, default=[], metavar="KEY=VALUE",
                   help="engine option (repeatable; VALUE is parsed as JSON when it can be)")
    p.add_argument("--max-batch-items", type=int, default=ServiceLimits.max_batch_items)
    p.add_argument("--batch-wait-ms", type=float, default=ServiceLimits.batch_wait_ms)
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=run_serve)
    return p


def _store_model(store: Any) -> str | None:
    fingerprint = getattr(store, "fingerprint", None)
    if isinstance(fingerprint, dict):
        return fingerprint.get("model")
    return None


def run_serve(args: argparse.Namespace) -> int:
    """Load the models (and store) named by ``args`` and serve until interrupted."""
    from qwen3_rag import Qwen3Embedder, Qwen3Reranker

    store = None
    if args.store:
        from qwen3_rag import FaissStore  # type: ignore[attr-defined]

        store = FaissStore.load(args.store)
    options = dict(args.option)
    common: dict[str, Any] = {"backend": args.backend, **options}
    if args.max_length is not None:
        common["max_length"] = args.max_length
    model = args.model or (_store_model(store) if store is not None else None) or DEFAULT_EMBEDDING_MODEL
    dims = getattr(store, "dimension", None) if store is not None else None
    embedder = Qwen3Embedder(model, **common)
    if dims is not None and dims != embedder.dimension:
        embedder = Qwen3Embedder(model, dimensions=dims, **common)
    reranker = None
    if args.reranker_model and args.reranker_model.lower() != "none":
        reranker = Qwen3Reranker(args.reranker_model, **common)
    limits = ServiceLimits(max_batch_items=args.max_batch_items, batch_wait_ms=args.batch_wait_ms)
    serve(embedder, reranker, store, host=args.host, port=args.port, api_key=args.api_key,
          limits=limits, log_level=args.log_level)
    return 0
