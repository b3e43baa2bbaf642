"""``serve()`` and the ``qwen3-rag serve`` subcommand (``add_arguments``/``run``, see
:mod:`qwen3_rag.cli`). Heavy imports (fastapi, uvicorn, the models) happen in ``run``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from typing import Any

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
    log_level: str = "info",
    **app_options: Any,
) -> None:
    """Run the service with uvicorn until interrupted (binds 127.0.0.1 unless told otherwise).

    ``app_options`` (``limits``, model names) go to :func:`qwen3_rag.service.create_app`.
    """
    import uvicorn

    from qwen3_rag.service.app import create_app
    from qwen3_rag.service.server import server_options

    if host not in LOOPBACK and not api_key:
        logger.warning("qwen3_rag: serving on %s without an API key: anyone who reaches it can use it", host)
    app = create_app(embedder, reranker, store, api_key=api_key, **app_options)
    # uvicorn shuts down gracefully on SIGTERM, then restores the handler it found and raises the
    # signal again. With the default handler the process would die there without running its
    # exit hooks, and a vLLM engine core (a process of its own) would outlive the server; with
    # this one it exits through Python (status 143) and the engines are shut down.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_signal) if main else None
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level,
                    **server_options(app.state.service.limits))
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``serve`` subcommand's options."""
    from qwen3_rag.cli.common import add_model_options

    parser.add_argument("--store", metavar="DIR", help="store directory: enables POST /search")
    parser.add_argument("--store-poll-s", type=float, default=2.0,
                        help="seconds between two looks for a new version of the store (saved by "
                        "qwen3-rag index), served once loaded (default 2; 0: never)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument("--api-key", default=os.environ.get(API_KEY_ENV),
                        help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV}, "
                        "preferred: an argument is visible to other users in ps)")
    parser.add_argument("--no-docs", action="store_true",
                        help="do not serve /docs and /redoc (their pages load Swagger UI and ReDoc "
                        "from a CDN)")
    parser.add_argument("--no-reranker", action="store_true", help="serve without a reranker")
    parser.add_argument("--max-batch-items", type=int, help="most sequences per engine call (default 256)")
    parser.add_argument("--max-batch-tokens", type=int,
                        help="most tokens per engine call: larger requests are cut into calls that take "
                        "turns with other requests' (default 65536)")
    parser.add_argument("--max-request-tokens", type=int,
                        help="most tokens one request may have a model process; 413 beyond "
                        "(default 1048576)")
    parser.add_argument("--batch-wait-ms", type=float,
                        help="how long a request waits for others before its engine call (default 0: "
                        "requests arriving while the engine runs share the next call)")
    parser.add_argument("--log-level", default="info", help="uvicorn log level (default: info)")
    add_model_options(parser, reranker=True)


#: calls of at most this many padded tokens take the CUDA-graph fast path (vLLM backend)
FAST_PATH_TOKENS = 8192


def engine_defaults(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """Engine options ``serve`` gives its ``kind`` model ("embedding" or "reranker") unless
    configured otherwise (a ``[embedding]``/``[reranker]`` table or ``QWEN3_RAG_*``).

    On vLLM:

    - ``fast_path_tokens``: calls of up to 8192 padded tokens (a query; the candidates of a
      search or two) replay CUDA graphs of a transformers copy of the model
      (:mod:`qwen3_rag.engine.routed`); larger ones (many requests micro-batched) go to vLLM.
      Set ``fast_path_tokens = 0`` to send everything to vLLM.
    - ``fast_path_compile``: the fast path's decoder layers are compiled first (one
      ``torch.compile`` for all layers and shapes), so a replay runs fused kernels.
    - the reranker's engine core runs in the service's process (``multiprocessing="off"``): a
      large call sends it hundreds of prompts, and a spawned engine core costs a message per
      prompt each way (one call of 32 prompts took about twice as long spawned as in-process;
      docs/performance.md). The embedder stays spawned: two in-process vLLM engines in one
      process would clash.
    """
    from qwen3_rag.config import get_settings
    from qwen3_rag.engine import resolve_backend

    settings = get_settings()
    backend = resolve_backend(args.backend or settings.backend)
    if backend != "vllm":
        return {}
    configured = settings.engine_options(kind, backend)
    wanted: dict[str, Any] = {"fast_path_tokens": FAST_PATH_TOKENS}
    if configured.get("fast_path_tokens", FAST_PATH_TOKENS):
        wanted["fast_path_compile"] = True
    if kind == "reranker":
        wanted["multiprocessing"] = "off"
    return {k: v for k, v in wanted.items() if k not in configured}


def check_listen(host: str, port: int) -> None:
    """Raise ``CLIError`` when this process cannot listen on ``host:port`` (in use, a host that is
    not this machine's, a port below 1024 without the right): a bind as uvicorn will make it."""
    import socket

    from qwen3_rag.cli import CLIError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            s.bind(address)
    except OSError as e:
        raise CLIError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e


def check_key_argument(api_key: str | None) -> None:
    """Warn when the key came from the command line (other users see it in ``ps``); raise
    ``CLIError`` for a key no client could send."""
    from qwen3_rag.cli import CLIError
    from qwen3_rag.service.state import check_api_key

    if api_key and api_key != os.environ.get(API_KEY_ENV):
        logger.warning("qwen3_rag: --api-key is visible to other users of this machine (ps); "
                       "set $%s instead", API_KEY_ENV)
    try:
        check_api_key(api_key)
    except ValueError as e:
        raise CLIError(str(e)) from e


def run(args: argparse.Namespace) -> int:
    """Load the models (and store) named by ``args`` and serve until interrupted."""
    from qwen3_rag.cli import CLIError
    from qwen3_rag.cli.common import make_embedder, make_reranker, open_store, store_reranker

    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise CLIError(f"serve needs the 'serve' extra ({e.name} is missing): "
                       "pip install 'qwen3-rag[serve]'") from e
    from qwen3_rag.service.schemas import ServiceLimits

    if not 0 < args.port < 65536:
        raise CLIError(f"--port must be 1..65535, got {args.port}")
    if not args.store_poll_s >= 0:
        raise CLIError(f"--store-poll-s must be >= 0, got {args.store_poll_s}")
    check_listen(args.host, args.port)  # before the models load (minutes on a GPU), not after
    check_key_argument(args.api_key)
    options = ("max_batch_items", "max_batch_tokens", "max_request_tokens", "batch_wait_ms")
    try:
        limits = ServiceLimits(**{k: getattr(args, k) for k in options if getattr(args, k) is not None})
    except ValueError as e:
        raise CLIError(f"--{str(e).replace('_', '-')}") from e
    store = None
    if args.store:
        store, embedder = open_store(args, **engine_defaults(args, "embedding"))
    else:
        embedder = make_embedder(args, **engine_defaults(args, "embedding"))
    reranker = None if args.no_reranker else make_reranker(args, store_reranker(args.store),
                                                           **engine_defaults(args, "reranker"))
    serve(embedder, reranker, store, host=args.host, port=args.port, api_key=args.api_key,
          log_level=args.log_level, limits=limits, docs=not args.no_docs, store_poll_s=args.store_poll_s)
    return 0
