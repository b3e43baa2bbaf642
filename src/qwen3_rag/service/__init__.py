"""HTTP service: search, rerank and OpenAI-compatible embeddings over loaded Qwen3 models.

Needs the ``serve`` extra (``pip install 'qwen3-rag[serve]'``): FastAPI, uvicorn and
prometheus-client.

Example (downloads the default models)::

    from qwen3_rag import Qwen3Embedder, Qwen3Reranker
    from qwen3_rag.service import serve
    serve(Qwen3Embedder(), Qwen3Reranker(), port=8000)   # API docs at http://127.0.0.1:8000/docs
"""

from qwen3_rag.service.app import create_app, select_results
from qwen3_rag.service.cli import add_serve_parser, run_serve, serve
from qwen3_rag.service.schemas import ServiceLimits

__all__ = ["ServiceLimits", "add_serve_parser", "create_app", "run_serve", "select_results", "serve"]
