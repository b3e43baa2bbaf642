"""LlamaIndex node postprocessor from qwen3-rag: ``Qwen3Rerank``."""

from llama_index.postprocessor.qwen3_rag.base import Qwen3Rerank

__all__ = ["Qwen3Rerank"]
