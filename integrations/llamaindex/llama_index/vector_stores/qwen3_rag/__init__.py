"""LlamaIndex vector store from qwen3-rag: ``Qwen3FaissVectorStore``."""

from llama_index.vector_stores.qwen3_rag.base import Qwen3FaissVectorStore, to_store_filter

__all__ = ["Qwen3FaissVectorStore", "to_store_filter"]
