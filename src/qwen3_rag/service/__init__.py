"""HTTP service: search, rerank and OpenAI-compatible embeddings over loaded Qwen3 models.

Needs the ``serve`` extra (``pip install 'qwen3-rag[serve]'``): FastAPI, uvicorn and
prometheus-client. Names are imported on first use, so ``qwen3-rag --help`` stays fast.

The package: ``app.py`` (:func:`create_app` assembles the parts), ``state.py`` (what the routes
share), ``schemas.py`` (request/response models), ``limits.py`` (the one input-limits
dependency), ``auth.py``, ``errors.py``, ``routers/`` (one module per endpoint group),
``batcher.py`` (micro-batching), ``metrics.py``, ``middleware.py`` and ``cli.py`` (``serve``).

Example (downloads the default models)::

    from qwen3_rag import Qwen3Embedder, Qwen3Reranker
    from qwen3_rag.service import serve
    serve(Qwen3Embedder(), Qwen3Reranker(), port=8000)   # API docs at http://127.0.0.1:8000/docs
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "create_app": "qwen3_rag.service.app",
    "select_results": "qwen3_rag.ranking",
    "serve": "qwen3_rag.service.cli",
    "ServiceLimits": "qwen3_rag.service.schemas",
    "ServiceState": "qwen3_rag.service.state",
    "MicroBatcher": "qwen3_rag.service.batcher",
    "Lanes": "qwen3_rag.service.lanes",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'qwen3_rag.service' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
