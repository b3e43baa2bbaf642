"""qwen3-rag: Qwen3-Embedding and Qwen3-Reranker for RAG pipelines, on vLLM or transformers.

Example (loads ``Qwen/Qwen3-Embedding-0.6B`` and ``Qwen/Qwen3-Reranker-0.6B`` from the hub)::

    from qwen3_rag import Qwen3Embedder, Qwen3Reranker

    emb = Qwen3Embedder()
    docs = emb.embed_documents(["Paris is the capital of France."])
    q = emb.embed_queries(["What is the capital of France?"])
    Qwen3Reranker().rerank("capital of France?", ["Paris ...", "Bananas ..."], top_n=1)
"""

from qwen3_rag.data import sample_corpus
from qwen3_rag.embedder import Qwen3Embedder
from qwen3_rag.formats import DEFAULT_INSTRUCTION
from qwen3_rag.indexing import index_corpus
from qwen3_rag.reranker import Qwen3Reranker, RerankResult
from qwen3_rag.store import FaissStore, Hit

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_INSTRUCTION",
    "FaissStore",
    "Hit",
    "Qwen3Embedder",
    "Qwen3Reranker",
    "RerankResult",
    "__version__",
    "index_corpus",
    "sample_corpus",
]

