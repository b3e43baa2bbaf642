"""LangChain integration of qwen3-rag: Qwen3 embeddings, Qwen3 reranker, Faiss vector store.

Example:
    >>> from langchain_qwen3_rag import Qwen3Embeddings, Qwen3FaissVectorStore, Qwen3Rerank  # doctest: +SKIP
    >>> embeddings = Qwen3Embeddings()            # doctest: +SKIP
    >>> reranker = Qwen3Rerank(top_n=3)           # doctest: +SKIP
    >>> store = Qwen3FaissVectorStore.from_texts(["Paris is in France."], embeddings)  # doctest: +SKIP
"""

from langchain_qwen3_rag.embeddings import Qwen3Embeddings
from langchain_qwen3_rag.rerank import Qwen3Rerank
from langchain_qwen3_rag.vectorstores import Qwen3FaissVectorStore

__version__ = "0.1.0"

__all__ = ["Qwen3Embeddings", "Qwen3FaissVectorStore", "Qwen3Rerank", "__version__"]
