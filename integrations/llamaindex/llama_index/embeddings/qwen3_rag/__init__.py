"""LlamaIndex embeddings from qwen3-rag: ``Qwen3Embedding``."""

from llama_index.embeddings.qwen3_rag.base import Qwen3Embedding

__all__ = ["Qwen3Embedding"]
